//! Which API resource serves each kind kflex applies: Kubernetes' own groups and the Gateway API
//! kinds kflex renders by their known plural, anything else (hooks' custom resources) by
//! discovery, asked once per kind.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context as _;
use kube::core::{ApiResource, GroupVersionKind};

/// API groups whose plurals follow kube-rs's rules (Kubernetes' own and OpenShift's routes),
/// with the version kflex uses of each.
const WELL_KNOWN_GROUPS: [(&str, &str); 17] = [
    ("", "v1"),
    ("apps", "v1"),
    ("batch", "v1"),
    ("rbac.authorization.k8s.io", "v1"),
    ("networking.k8s.io", "v1"),
    ("policy", "v1"),
    ("apiextensions.k8s.io", "v1"),
    ("admissionregistration.k8s.io", "v1"),
    ("storage.k8s.io", "v1"),
    ("scheduling.k8s.io", "v1"),
    ("coordination.k8s.io", "v1"),
    ("discovery.k8s.io", "v1"),
    ("events.k8s.io", "v1"),
    ("autoscaling", "v2"),
    ("apiregistration.k8s.io", "v1"),
    ("route.openshift.io", "v1"),
    ("tenancy.kflex.kubestellar.org", "v1alpha1"),
];

fn well_known(group: &str) -> Option<&'static str> {
    WELL_KNOWN_GROUPS
        .iter()
        .find(|(g, _)| *g == group)
        .map(|(_, version)| *version)
}

/// Kinds of other groups that kflex renders itself, with the version it renders: Gateway API's
/// TLSRoute and Gateway (Standard, v1). The group's other kinds and versions, as hooks may use
/// them, are found by discovery.
const WELL_KNOWN_KINDS: [(&str, &str, &str); 2] = [
    ("gateway.networking.k8s.io", "v1", "TLSRoute"),
    ("gateway.networking.k8s.io", "v1", "Gateway"),
];

/// The version kflex renders `kind` of `group` in, if it renders that kind.
fn well_known_kind(group: &str, kind: &str) -> Option<&'static str> {
    WELL_KNOWN_KINDS
        .iter()
        .find(|(g, _, k)| *g == group && *k == kind)
        .map(|(_, version, _)| *version)
}

/// Resolves kinds to API resources, caching discovery.
pub struct Resources {
    client: kube::Client,
    discovered: Mutex<HashMap<GroupVersionKind, ApiResource>>,
}

impl std::fmt::Debug for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resources").finish_non_exhaustive()
    }
}

impl Resources {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            discovered: Mutex::new(HashMap::new()),
        }
    }

    /// The API resource of `api_version`/`kind`.
    pub async fn resolve(&self, api_version: &str, kind: &str) -> anyhow::Result<ApiResource> {
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        if well_known(group).is_some() || well_known_kind(group, kind) == Some(version) {
            return Ok(ApiResource::from_gvk(&gvk));
        }
        if let Some(found) = self.lock().get(&gvk) {
            return Ok(found.clone());
        }
        let (resource, _) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .with_context(|| format!("discovering the API resource of {kind}.{group}/{version}"))?;
        self.lock().insert(gvk, resource.clone());
        Ok(resource)
    }

    /// The API resource of `Kind.group` (core kinds: `Kind`), in the version kflex uses for
    /// Kubernetes' own groups, else the one the API server prefers; `None` when the API server
    /// does not serve that kind (any more: a hook's CustomResourceDefinition was removed).
    pub async fn resolve_group_kind(
        &self,
        group_kind: &str,
    ) -> anyhow::Result<Option<ApiResource>> {
        let (kind, group) = group_kind.split_once('.').unwrap_or((group_kind, ""));
        if let Some(version) = well_known(group).or_else(|| well_known_kind(group, kind)) {
            return Ok(Some(ApiResource::from_gvk(&GroupVersionKind::gvk(
                group, version, kind,
            ))));
        }
        let api_group = match kube::discovery::group(&self.client, group).await {
            Ok(api_group) => api_group,
            Err(kube::Error::Discovery(kube::error::DiscoveryError::MissingApiGroup(_))) => {
                return Ok(None);
            }
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("discovering API group {group:?} of {group_kind}"));
            }
        };
        Ok(api_group
            .recommended_kind(kind)
            .map(|(resource, _)| resource))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<GroupVersionKind, ApiResource>> {
        self.discovered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_plurals() {
        for (api_version, kind, plural) in [
            ("v1", "Endpoints", "endpoints"),
            ("networking.k8s.io/v1", "Ingress", "ingresses"),
            ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
            ("route.openshift.io/v1", "Route", "routes"),
            ("gateway.networking.k8s.io/v1", "TLSRoute", "tlsroutes"),
            ("gateway.networking.k8s.io/v1", "Gateway", "gateways"),
            ("apps/v1", "StatefulSet", "statefulsets"),
        ] {
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
            assert_eq!(resource.plural, plural);
        }
    }
}
