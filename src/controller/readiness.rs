//! When a control plane is Ready: its workload is ready, its API answers through its in-cluster
//! kubeconfig, and (with `waitForPostCreateHooks`) its hooks' objects are ready, by KubeFlex's
//! rules per kind.

use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kflex_core::render::KubeconfigSecret;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use serde_json::Value;

/// Reading what says whether a control plane is Ready failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadinessError {
    #[error("failed to read {kind} {object}")]
    Read {
        kind: String,
        /// `namespace/name`, or the name of a cluster-scoped object.
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to find the API resource of {kind} ({api_version})")]
    Discover {
        api_version: String,
        kind: String,
        #[source]
        source: anyhow::Error,
    },
    #[error("type {0} has no runtime facts")]
    NoFacts(kflex_core::api::ControlPlaneType),
}

impl ReadinessError {
    /// Reading object `name` of `kind` (in `namespace`) failed.
    pub fn read(kind: &str, namespace: Option<&str>, name: &str, source: kube::Error) -> Self {
        Self::Read {
            kind: kind.to_owned(),
            object: match namespace {
                Some(namespace) => format!("{namespace}/{name}"),
                None => name.to_owned(),
            },
            source,
        }
    }
}

/// Asks a control plane's API whether it answers, given a kubeconfig for it.
pub trait ApiProbe: Send + Sync {
    fn serving<'a>(&'a self, kubeconfig: &'a [u8]) -> BoxFuture<'a, bool>;
}

/// Answers with a real request within `timeout`: `GET /api`, which (unlike `/version`) needs
/// the kubeconfig's credentials to be accepted, so an expired token is not Ready.
#[derive(Debug)]
pub struct KubeconfigProbe {
    pub timeout: Duration,
}

impl ApiProbe for KubeconfigProbe {
    fn serving<'a>(&'a self, kubeconfig: &'a [u8]) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let Ok(parsed) = crate::bootstrap::kubeconfig::parse(kubeconfig) else {
                return false;
            };
            let Ok(mut config) = kube::Config::from_custom_kubeconfig(
                parsed,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            else {
                return false;
            };
            config.connect_timeout = Some(self.timeout);
            config.read_timeout = Some(self.timeout);
            let Ok(client) = kube::Client::try_from(config) else {
                return false;
            };
            matches!(
                tokio::time::timeout(self.timeout, client.list_core_api_versions()).await,
                Ok(Ok(_))
            )
        })
    }
}

/// Whether the API of the control plane whose kubeconfig is `secret` in `namespace` answers.
pub async fn api_serving(
    client: &kube::Client,
    probe: &dyn ApiProbe,
    namespace: &str,
    secret: &KubeconfigSecret,
) -> Result<bool, ReadinessError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let found = secrets
        .get_opt(secret.name)
        .await
        .map_err(|err| ReadinessError::read("Secret", Some(namespace), secret.name, err))?;
    let kubeconfig = found
        .and_then(|s| s.data)
        .and_then(|mut data| data.remove(secret.in_cluster_key))
        .filter(|value| !value.0.is_empty());
    Ok(match kubeconfig {
        Some(bytes) => probe.serving(&bytes.0).await,
        None => false,
    })
}

/// Whether object `name` of `resource` (in `namespace`) is ready, by KubeFlex's rules: a
/// Deployment or StatefulSet has all its replicas ready, a Job succeeded, a DaemonSet is ready
/// on every node, a CRD is established, a Pod runs or succeeded; anything else exists.
pub async fn object_ready(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
    name: &str,
) -> Result<bool, ReadinessError> {
    let api: Api<DynamicObject> = match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let Some(object) = api
        .get_opt(name)
        .await
        .map_err(|err| ReadinessError::read(&resource.kind, namespace, name, err))?
    else {
        return Ok(false);
    };
    Ok(ready(&resource.group, &resource.kind, &object.data))
}

/// Whether readiness of `group`/`kind` depends on more than existing (see [`ready`]).
pub fn has_rule(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet")
            | ("batch", "Job")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("", "Pod")
    )
}

fn int(value: &Value, pointer: &str) -> Option<i64> {
    value.pointer(pointer).and_then(Value::as_i64)
}

/// The readiness rule of one kind on an object's data (spec and status).
pub fn ready(group: &str, kind: &str, data: &Value) -> bool {
    match (group, kind) {
        ("apps", "Deployment" | "StatefulSet") => {
            let wanted = int(data, "/spec/replicas").unwrap_or(1);
            wanted > 0 && int(data, "/status/readyReplicas").unwrap_or(0) >= wanted
        }
        ("batch", "Job") => int(data, "/status/succeeded").unwrap_or(0) > 0,
        ("apps", "DaemonSet") => {
            let wanted = int(data, "/status/desiredNumberScheduled").unwrap_or(0);
            int(data, "/status/numberReady").unwrap_or(0) >= wanted
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c["type"] == "Established" && c["status"] == "True")
            }),
        ("", "Pod") => matches!(
            data.pointer("/status/phase").and_then(Value::as_str),
            Some("Running" | "Succeeded")
        ),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn kubeflex_readiness_rules() {
        let deployment =
            |ready: i64| json!({"spec": {"replicas": 2}, "status": {"readyReplicas": ready}});
        assert!(ready("apps", "Deployment", &deployment(2)));
        assert!(!ready("apps", "Deployment", &deployment(1)));
        assert!(
            !ready("apps", "StatefulSet", &json!({"spec": {}})),
            "replicas default to one"
        );
        assert!(ready("batch", "Job", &json!({"status": {"succeeded": 1}})));
        assert!(!ready("batch", "Job", &json!({"status": {"failed": 3}})));
        let crd = json!({"status": {"conditions": [{"type": "Established", "status": "True"}]}});
        assert!(ready(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &crd
        ));
        assert!(ready("", "ConfigMap", &json!({})));
    }

    #[test]
    fn kinds_with_a_rule_are_not_ready_by_existing() {
        for (group, kind) in [
            ("apps", "Deployment"),
            ("apps", "StatefulSet"),
            ("batch", "Job"),
            ("apiextensions.k8s.io", "CustomResourceDefinition"),
            ("", "Pod"),
        ] {
            assert!(has_rule(group, kind));
            assert!(!ready(group, kind, &json!({"spec": {}})), "{kind}");
        }
        assert!(!has_rule("", "Secret") && !has_rule("", "ConfigMap"));
    }
}
