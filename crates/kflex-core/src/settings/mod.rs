//! Render settings: what `kflex render` and the controller need beyond the ControlPlane itself
//! (domain, ports, OpenShift, images, versions, ...).
//!
//! Settings arrive in layers — defaults, values files, environment, `--set`, dedicated flags, or
//! the `kubeflex-config` ConfigMap — each a flat map of dotted keys. This module owns the key
//! registry, the merge (later layers win), the typing of string values and the validation. It
//! never reads a file or the environment: callers hand it the layers as data.

mod backup;
mod exposure;
mod images;
mod layers;
mod validate;

use serde::{Deserialize, Serialize};

pub use backup::{BackupSettings, BackupStore, PvcStore, S3Store};
pub use exposure::{
    CONTROL_PLANE_NAMESPACE_LABEL, EXTERNAL_DNS_HOSTNAME, Exposure, GatewaySettings,
    LoadBalancerSettings,
};
pub use images::{ImageRef, Images, VCLUSTER_KUBERNETES_VERSION};
pub use layers::{
    Layer, SettingSource, SettingsError, flatten_for_config_map, is_list_key, known_keys,
};

/// Namespace of everything installed once per hosting cluster (fixed, as in KubeFlex).
pub const SYSTEM_NAMESPACE: &str = "kubeflex-system";

/// The oldest hosting-cluster Kubernetes minor version kflex supports.
pub const MIN_KUBE_MINOR: u32 = 33;

/// Every render setting, fully resolved. Field names are the keys users write (camelCase).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// DNS domain of control-plane endpoints: `<cp>.<domain>`.
    pub domain: String,
    /// Port the Ingress controller is reached on from outside the hosting cluster.
    pub external_port: u16,
    /// Name of the hosting cluster's node container (kind), added to certificate SANs.
    pub host_container: String,
    /// Expose control planes with OpenShift Routes instead of Ingresses.
    pub is_open_shift: bool,
    /// Kubernetes version of the hosting cluster (like `helm template --kube-version`).
    pub kube_version: String,
    /// Default Kubernetes version of hosted control planes (`spec.kubernetesVersion` overrides).
    pub kubernetes_version: String,
    /// DNS domain of the hosting cluster's Services.
    pub cluster_domain: String,
    /// IngressClass of the TLS-passthrough Ingresses.
    pub ingress_class_name: String,
    /// Type of each control plane's API Service: ClusterIP or NodePort.
    pub api_server_service_type: ServiceType,
    /// How control planes are reached from outside the hosting cluster; unset: `route` on
    /// OpenShift, else `ingress` (see [`Settings::exposure`]).
    pub exposure: Option<Exposure>,
    /// The Gateway control planes' TLSRoutes attach to (exposure `gateway`).
    pub gateway: GatewaySettings,
    /// The API Services as load balancers (exposure `loadBalancer`).
    pub load_balancer: LoadBalancerSettings,
    /// When set, replaces the registry of every image (a mirror).
    pub image_registry: String,
    /// Pull policy of every container.
    pub image_pull_policy: PullPolicy,
    /// Container images.
    pub images: Images,
    /// k8s control planes: how many API servers each runs by default.
    pub k8s: K8sSettings,
    /// Where k8s control planes keep their data: the shared PostgreSQL (in `kubeflex-system`, or
    /// an existing server) and the dedicated ones.
    pub postgres: PostgresSettings,
    /// k3s control planes: their data volume and their own networks.
    pub k3s: K3sSettings,
    /// The data volume of each vcluster control plane.
    pub vcluster: VolumeSettings,
    /// Kinds (`Kind.group`, or `Kind` for the core group) that hooks may use and that are
    /// namespaced, beyond the built-in Kubernetes kinds.
    pub namespaced_kinds: Vec<String>,
    /// Kinds that hooks may use and that are cluster-scoped, beyond the built-in ones.
    pub cluster_scoped_kinds: Vec<String>,
    /// Resources (`resource.group`, or `resource` for the core group) that hooks write and the
    /// controller's ClusterRole does not already grant: it is granted them too.
    pub hook_resources: Vec<String>,
    /// Let PostCreateHooks run privileged pods (host namespaces, privileged containers, host
    /// paths), lowering `<cp>-system` to Pod Security `privileged`. Off: such hooks are refused.
    pub allow_privileged_hooks: bool,
    /// Let PostCreateHooks render ClusterRoleBindings, within limits (subjects only
    /// ServiceAccounts of `<cp>-system`; no binding of `cluster-admin`, `admin`, `edit`, `view`
    /// or `system:*` roles). Off: hooks grant permissions in `<cp>-system` only. Either way a
    /// hook's ClusterRole has no `*`, `escalate`, `bind` or `impersonate` and no aggregation.
    pub allow_cluster_scoped_hook_rbac: bool,
    /// Where control planes' backups are kept, and which control plane may be restored from
    /// which other's backups.
    pub backup: BackupSettings,
}

/// Settings of k8s control planes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K8sSettings {
    /// kube-apiserver replicas of a control plane without `spec.replicas`.
    pub replicas: u32,
}

/// Settings of the PostgreSQL servers k8s control planes keep their data in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresSettings {
    /// Where the shared server is: rendered by `--system`, or an existing one.
    pub mode: PostgresMode,
    /// Size of the in-cluster shared server's data volume.
    pub storage_size: String,
    /// StorageClass of that volume; empty means the cluster's default class.
    pub storage_class_name: String,
    /// `max_connections` of the in-cluster servers (shared and dedicated).
    pub max_connections: u32,
    /// The existing server of mode `external`.
    pub external: ExternalPostgresSettings,
    /// The data volume of each dedicated server (`spec.backend: dedicated`).
    pub dedicated: VolumeSettings,
}

/// Where the shared PostgreSQL server is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum PostgresMode {
    /// A StatefulSet in `kubeflex-system`, rendered by `--system` (the default).
    InCluster,
    /// An existing server the administrator names in a Secret; `--system` renders none.
    External,
}

/// The existing shared server of mode `external`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalPostgresSettings {
    /// The Secret in `kubeflex-system` with the server and an account that may create roles and
    /// databases (keys `host`, `port`, `username`, `password`, optional `sslmode`, `ca.crt`).
    pub secret_name: String,
}

/// The data volume of a control plane's StatefulSet (one claim per pod, never shared).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeSettings {
    /// Size of the data volume.
    pub storage_size: String,
    /// StorageClass of the data volume; empty means the cluster's default class.
    pub storage_class_name: String,
}

/// Settings of k3s control planes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K3sSettings {
    /// Size of the data volume (datastore, certificates, the node's container images).
    pub storage_size: String,
    /// StorageClass of the data volume; empty means the cluster's default class.
    pub storage_class_name: String,
    /// Pod network inside each k3s control plane; must not overlap the hosting cluster's.
    pub cluster_cidr: String,
    /// Service network inside each k3s control plane; must not overlap the hosting cluster's.
    pub service_cidr: String,
}

/// Service types a control plane's API Service may have.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
}

/// Container image pull policies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            domain: "localtest.me".to_owned(),
            external_port: 9443,
            host_container: "kubeflex-control-plane".to_owned(),
            is_open_shift: false,
            kube_version: format!("1.{MIN_KUBE_MINOR}"),
            kubernetes_version: "v1.34.3".to_owned(),
            cluster_domain: "cluster.local".to_owned(),
            ingress_class_name: "nginx".to_owned(),
            api_server_service_type: ServiceType::ClusterIP,
            exposure: None,
            gateway: GatewaySettings::default(),
            load_balancer: LoadBalancerSettings::default(),
            image_registry: String::new(),
            image_pull_policy: PullPolicy::IfNotPresent,
            images: Images::default(),
            k8s: K8sSettings { replicas: 1 },
            postgres: PostgresSettings {
                mode: PostgresMode::InCluster,
                storage_size: "8Gi".to_owned(),
                storage_class_name: String::new(),
                max_connections: 1000,
                external: ExternalPostgresSettings {
                    secret_name: String::new(),
                },
                // One control plane's data: much smaller than the shared server's.
                dedicated: VolumeSettings {
                    storage_size: "2Gi".to_owned(),
                    storage_class_name: String::new(),
                },
            },
            // k3s runs its node in the pod: containerd keeps the tenant's images on this volume.
            k3s: K3sSettings {
                storage_size: "10Gi".to_owned(),
                storage_class_name: String::new(),
                // k3s's own defaults, which a k3s or RKE2 hosting cluster also uses.
                cluster_cidr: "10.42.0.0/16".to_owned(),
                service_cidr: "10.43.0.0/16".to_owned(),
            },
            // vCluster's own default.
            vcluster: VolumeSettings {
                storage_size: "5Gi".to_owned(),
                storage_class_name: String::new(),
            },
            namespaced_kinds: Vec::new(),
            cluster_scoped_kinds: Vec::new(),
            hook_resources: Vec::new(),
            allow_privileged_hooks: false,
            allow_cluster_scoped_hook_rbac: false,
            backup: BackupSettings::default(),
        }
    }
}

impl Settings {
    /// Merges `layers` over the defaults (later layers win) and validates the result.
    pub fn resolve(layers: &[Layer]) -> Result<Self, SettingsError> {
        let (settings, origins) = layers::merge_with_origins(layers)?;
        validate::check(&settings).map_err(|(key, reason)| SettingsError::InvalidValue {
            origin: origins.get(&key).cloned().unwrap_or(SettingSource::Default),
            key,
            reason,
        })?;
        Ok(settings)
    }

    /// How control planes are exposed: the `exposure` setting, else KubeFlex's choice (a Route
    /// on OpenShift, an Ingress elsewhere), so settings without it render as before.
    pub fn exposure(&self) -> Exposure {
        self.exposure.unwrap_or(if self.is_open_shift {
            Exposure::Route
        } else {
            Exposure::Ingress
        })
    }

    /// The minor version of the hosting cluster, e.g. 33 for `1.33`.
    pub fn kube_minor(&self) -> u32 {
        validate::kube_minor(&self.kube_version).unwrap_or(MIN_KUBE_MINOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_name_where_the_value_came_from() {
        let layer = Layer::from_environment([("KFLEX_KUBERNETES_VERSION", "1.34")]).unwrap();
        let err = Settings::resolve(&[layer]).unwrap_err().to_string();
        assert_eq!(
            err,
            "setting kubernetesVersion (from environment variable KFLEX_KUBERNETES_VERSION): \
             \"1.34\" is not a Kubernetes release like v1.34.3"
        );
    }

    #[test]
    fn bad_exposure_settings_name_key_source_and_reason() {
        let set = |pairs: &[(&str, &str)]| {
            let layer = Layer::from_strings(|_| SettingSource::Set, pairs.iter().copied())?;
            Settings::resolve(&[layer])
        };
        for (pairs, expected) in [
            (
                &[("exposure", "route")][..],
                "setting exposure (from --set): route needs isOpenShift: true",
            ),
            (
                &[("exposure", "gateway"), ("gateway.create", "true")][..],
                "setting gateway.create (from --set): needs gateway.className",
            ),
            (
                &[("loadBalancer.sourceRanges", "10.0.0.0/8,192.168.1.1/16")][..],
                "setting loadBalancer.sourceRanges (from --set): \"192.168.1.1/16\" is not a \
                 network address; did you mean 192.168.0.0/16?",
            ),
            (
                &[("exposure", "ingres")][..],
                "setting exposure (from --set): must be one of ingress, route, gateway, \
                 loadBalancer, got \"ingres\" (did you mean ingress?)",
            ),
        ] {
            let err = set(pairs).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{pairs:?}: {err}");
        }
        // OpenShift runs Gateway API and load balancers too.
        let settings = set(&[
            ("isOpenShift", "true"),
            ("exposure", "gateway"),
            ("gateway.sectionName", "tls"),
        ])
        .unwrap();
        assert_eq!(settings.exposure(), Exposure::Gateway);
        let settings = set(&[("isOpenShift", "true"), ("exposure", "loadBalancer")]).unwrap();
        assert_eq!(settings.exposure(), Exposure::LoadBalancer);
    }

    #[test]
    fn resolving_nothing_gives_the_defaults() {
        assert_eq!(Settings::resolve(&[]).unwrap(), Settings::default());
    }
}
