//! Whether a kind is namespaced, decided offline: the built-in Kubernetes kinds, OpenShift's
//! Route, Gateway API's Standard kinds, CRDs present in the same render, and kinds the user
//! declared in the settings. An unknown kind is an error that says how to declare it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::api::names;
use crate::manifest::Manifest;
use crate::settings::Settings;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// (group, kind, scope) of every kind Kubernetes serves by default, plus OpenShift's Route and
/// the kinds of Gateway API's Standard channel (v1.6), which kflex renders with exposure gateway.
const BUILT_IN: &[(&str, &str, Scope)] = {
    use Scope::{Cluster as C, Namespaced as N};
    &[
        ("", "ConfigMap", N),
        ("", "Endpoints", N),
        ("", "Event", N),
        ("", "LimitRange", N),
        ("", "Namespace", C),
        ("", "Node", C),
        ("", "PersistentVolume", C),
        ("", "PersistentVolumeClaim", N),
        ("", "Pod", N),
        ("", "PodTemplate", N),
        ("", "ReplicationController", N),
        ("", "ResourceQuota", N),
        ("", "Secret", N),
        ("", "Service", N),
        ("", "ServiceAccount", N),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy", C),
        (
            "admissionregistration.k8s.io",
            "MutatingAdmissionPolicyBinding",
            C,
        ),
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
            C,
        ),
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicy",
            C,
        ),
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicyBinding",
            C,
        ),
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration",
            C,
        ),
        ("apiextensions.k8s.io", "CustomResourceDefinition", C),
        ("apiregistration.k8s.io", "APIService", C),
        ("apps", "ControllerRevision", N),
        ("apps", "DaemonSet", N),
        ("apps", "Deployment", N),
        ("apps", "ReplicaSet", N),
        ("apps", "StatefulSet", N),
        ("autoscaling", "HorizontalPodAutoscaler", N),
        ("batch", "CronJob", N),
        ("batch", "Job", N),
        ("certificates.k8s.io", "CertificateSigningRequest", C),
        ("certificates.k8s.io", "ClusterTrustBundle", C),
        ("coordination.k8s.io", "Lease", N),
        ("discovery.k8s.io", "EndpointSlice", N),
        ("events.k8s.io", "Event", N),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema", C),
        ("gateway.networking.k8s.io", "GRPCRoute", N),
        ("gateway.networking.k8s.io", "Gateway", N),
        ("gateway.networking.k8s.io", "GatewayClass", C),
        ("gateway.networking.k8s.io", "HTTPRoute", N),
        ("gateway.networking.k8s.io", "ListenerSet", N),
        ("gateway.networking.k8s.io", "ReferenceGrant", N),
        ("gateway.networking.k8s.io", "TLSRoute", N),
        (
            "flowcontrol.apiserver.k8s.io",
            "PriorityLevelConfiguration",
            C,
        ),
        ("networking.k8s.io", "IPAddress", C),
        ("networking.k8s.io", "Ingress", N),
        ("networking.k8s.io", "IngressClass", C),
        ("networking.k8s.io", "NetworkPolicy", N),
        ("networking.k8s.io", "ServiceCIDR", C),
        ("node.k8s.io", "RuntimeClass", C),
        ("policy", "PodDisruptionBudget", N),
        ("rbac.authorization.k8s.io", "ClusterRole", C),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding", C),
        ("rbac.authorization.k8s.io", "Role", N),
        ("rbac.authorization.k8s.io", "RoleBinding", N),
        ("resource.k8s.io", "DeviceClass", C),
        ("resource.k8s.io", "ResourceClaim", N),
        ("resource.k8s.io", "ResourceClaimTemplate", N),
        ("resource.k8s.io", "ResourceSlice", C),
        ("route.openshift.io", "Route", N),
        ("scheduling.k8s.io", "PriorityClass", C),
        ("storage.k8s.io", "CSIDriver", C),
        ("storage.k8s.io", "CSINode", C),
        ("storage.k8s.io", "CSIStorageCapacity", N),
        ("storage.k8s.io", "StorageClass", C),
        ("storage.k8s.io", "VolumeAttachment", C),
        ("storage.k8s.io", "VolumeAttributesClass", C),
    ]
};

/// Kind → scope, by group, looked up without allocating.
type Table = BTreeMap<String, BTreeMap<String, Scope>>;

/// Scopes known to one render: built-ins and declared kinds (shared by every control plane of
/// a renderer), plus CRDs found in one control plane's input.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scopes {
    known: Arc<Table>,
    learned: Table,
}

impl Scopes {
    /// Built-ins plus the kinds declared in `settings`.
    pub(crate) fn from_settings(settings: &Settings) -> Self {
        let mut known = Table::new();
        for (group, kind, scope) in BUILT_IN {
            insert(&mut known, group, kind, *scope);
        }
        for (kinds, scope) in [
            (&settings.namespaced_kinds, Scope::Namespaced),
            (&settings.cluster_scoped_kinds, Scope::Cluster),
        ] {
            for group_kind in kinds {
                let (kind, group) = group_kind.split_once('.').unwrap_or((group_kind, ""));
                insert(&mut known, group, kind, scope);
            }
        }
        Self {
            known: Arc::new(known),
            learned: Table::new(),
        }
    }

    /// Adds the kinds defined by CustomResourceDefinitions among `manifests`. A CRD's group,
    /// kind and scope must be what the API server accepts: its kind names objects, and so
    /// files under `--output-dir`.
    pub(crate) fn learn_crds<'a>(
        &mut self,
        manifests: impl IntoIterator<Item = &'a Manifest>,
    ) -> Result<(), (&'a Manifest, &'static str, String)> {
        for manifest in manifests {
            if manifest.group() != "apiextensions.k8s.io"
                || manifest.kind() != "CustomResourceDefinition"
            {
                continue;
            }
            let spec = manifest.object().get("spec");
            let text = |pointer: &str| {
                spec.and_then(|s| s.pointer(pointer))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            let (group, kind, scope) = (text("/group"), text("/names/kind"), text("/scope"));
            if let Some(reason) = names::dns1123_subdomain(group) {
                let reason = format!("{}: {reason}", names::quoted(group));
                return Err((manifest, "spec.group", reason));
            }
            if let Some(reason) = names::kind(kind) {
                let reason = format!("{}: {reason}", names::quoted(kind));
                return Err((manifest, "spec.names.kind", reason));
            }
            let scope = match scope {
                "Cluster" => Scope::Cluster,
                "Namespaced" => Scope::Namespaced,
                other => {
                    let reason = format!("{}: must be Namespaced or Cluster", names::quoted(other));
                    return Err((manifest, "spec.scope", reason));
                }
            };
            insert(&mut self.learned, group, kind, scope);
        }
        Ok(())
    }

    /// The scope of `kind` in `group`, if known. A CRD in the input wins over the tables.
    pub(crate) fn scope(&self, group: &str, kind: &str) -> Option<Scope> {
        let find = |table: &Table| table.get(group).and_then(|kinds| kinds.get(kind)).copied();
        find(&self.learned).or_else(|| find(&self.known))
    }
}

fn insert(table: &mut Table, group: &str, kind: &str, scope: Scope) {
    table
        .entry(group.to_owned())
        .or_default()
        .insert(kind.to_owned(), scope);
}

/// How to declare an unknown kind, for error messages.
pub(crate) fn declare_hint(group: &str, kind: &str) -> String {
    let group_kind = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    format!(
        "{group_kind} is not a built-in Kubernetes kind and no CustomResourceDefinition for it is \
         rendered; declare its scope with --namespaced-kind {group_kind} or \
         --cluster-scoped-kind {group_kind} (settings namespacedKinds / clusterScopedKinds)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn built_in_kinds_are_known() {
        let scopes = Scopes::from_settings(&Settings::default());
        assert_eq!(scopes.scope("apps", "Deployment"), Some(Scope::Namespaced));
        assert_eq!(
            scopes.scope("rbac.authorization.k8s.io", "ClusterRole"),
            Some(Scope::Cluster)
        );
        assert_eq!(scopes.scope("", "Namespace"), Some(Scope::Cluster));
        assert_eq!(scopes.scope("example.com", "Widget"), None);
        // Same kind name, different group.
        assert_eq!(
            scopes.scope("events.k8s.io", "Event"),
            Some(Scope::Namespaced)
        );
        assert_eq!(scopes.scope("apps", "Namespace"), None);
    }

    #[test]
    fn declared_kinds_and_crds_extend_the_table() {
        let settings = Settings {
            namespaced_kinds: vec!["Widget.example.com".into()],
            cluster_scoped_kinds: vec!["Gadget".into()],
            ..Settings::default()
        };
        let mut scopes = Scopes::from_settings(&settings);
        assert_eq!(
            scopes.scope("example.com", "Widget"),
            Some(Scope::Namespaced)
        );
        assert_eq!(scopes.scope("", "Gadget"), Some(Scope::Cluster));
        let crd = Manifest::new(
            "hook",
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": "cr1s.synthetic-crd.com"},
                   "spec": {"group": "synthetic-crd.com", "scope": "Namespaced", "names": {"kind": "CR1"}}}),
        )
        .unwrap();
        scopes.learn_crds([&crd]).unwrap();
        assert_eq!(
            scopes.scope("synthetic-crd.com", "CR1"),
            Some(Scope::Namespaced)
        );
    }

    #[test]
    fn crds_with_kinds_or_groups_that_are_not_names_are_refused() {
        let crd = |group: &str, kind: &str, scope: &str| {
            Manifest::new(
                "hook",
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                       "metadata": {"name": "x.example.com"},
                       "spec": {"group": group, "scope": scope, "names": {"kind": kind}}}),
            )
            .unwrap()
        };
        for (group, kind, scope, field) in [
            ("example.com", "../../x", "Namespaced", "spec.names.kind"),
            ("example.com", "/etc/passwd", "Cluster", "spec.names.kind"),
            (
                "example.com",
                "X\n---\nkind: Secret",
                "Cluster",
                "spec.names.kind",
            ),
            ("example.com", "x", "Cluster", "spec.names.kind"),
            ("example.com", "", "Cluster", "spec.names.kind"),
            ("../x", "Widget", "Cluster", "spec.group"),
            ("Example.com", "Widget", "Cluster", "spec.group"),
            ("", "Widget", "Cluster", "spec.group"),
            ("example.com", "Widget", "Everywhere", "spec.scope"),
        ] {
            let manifest = crd(group, kind, scope);
            let mut scopes = Scopes::from_settings(&Settings::default());
            let (_, got, reason) = scopes.learn_crds([&manifest]).unwrap_err();
            assert_eq!(got, field, "{group} {kind} {scope}: {reason}");
            assert!(!reason.chars().any(crate::text::is_unsafe_char), "{reason}");
        }
    }

    #[test]
    fn the_hint_names_both_flags() {
        let hint = declare_hint("example.com", "Widget");
        assert!(hint.contains("--namespaced-kind Widget.example.com"));
        assert!(hint.contains("--cluster-scoped-kind Widget.example.com"));
    }
}
