//! The values templates see. Everything derived from settings and the control plane is computed
//! here once, so templates stay declarative and agree with each other.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::{BackendDbType, ControlPlane, ControlPlaneType};
use crate::settings::{
    EXTERNAL_DNS_HOSTNAME, Exposure, PostgresMode, SYSTEM_NAMESPACE, ServiceType, Settings,
    VCLUSTER_KUBERNETES_VERSION,
};

/// Name of the shared PostgreSQL's Service, StatefulSet and admin Secret (KubeFlex's names).
pub(crate) const POSTGRES_NAME: &str = "postgres-postgresql";
/// Key of the admin password in the Secret [`POSTGRES_NAME`].
pub(crate) const POSTGRES_PASSWORD_KEY: &str = "postgres-password";
/// The server's TLS certificate and key, and the CA clients verify it with.
pub(crate) const POSTGRES_TLS_SECRET: &str = "postgres-postgresql-tls";
pub(crate) const POSTGRES_PORT: u16 = 5432;
/// A dedicated PostgreSQL's StatefulSet, Service and superuser password Secret in `<cp>-system`.
pub(crate) const DEDICATED_POSTGRES_NAME: &str = "postgres";
/// A dedicated PostgreSQL's TLS certificate and key, and the CA its clients verify it with.
pub(crate) const DEDICATED_POSTGRES_TLS_SECRET: &str = "postgres-tls";

/// `cp` in control-plane templates.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ControlPlaneContext {
    pub name: String,
    /// `<cp>-system`.
    pub namespace: String,
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// The control plane's Kubernetes version (spec, else settings).
    pub kubernetes_version: String,
    /// `<cp>` with `-` replaced by `_`: its database and role in the shared Postgres (k8s).
    pub database_name: String,
    /// `<cp>.<domain>`: the host of the Ingress or Route.
    pub external_host: String,
    /// `https://<cp>.<domain>:<externalPort>`: the API server from outside the hosting cluster.
    pub external_url: String,
    /// The Service in front of the API server, for the types that serve one.
    pub api_service: Option<String>,
    /// The API server from inside the hosting cluster, as the type's kubeconfig Secret names it.
    pub in_cluster_url: Option<String>,
    /// DNS names the API server certificate is valid for, beyond the server's own defaults.
    pub certificate_dns_names: Vec<String>,
    /// IP addresses the API server certificate is valid for.
    pub certificate_ip_addresses: Vec<&'static str>,
    /// Lifetime of the tokens the host and external types mint (`spec.tokenExpirationSeconds`).
    pub token_expiration_seconds: i64,
    /// When those tokens are refreshed: often enough that one never has less than a third of
    /// its lifetime left.
    pub token_refresh_schedule: String,
    /// When the certificate renewal CronJob runs: daily, at a time of day of this control
    /// plane's own (see [`spread`]).
    pub renew_schedule: String,
    /// For type external: the Secret holding the adopted cluster's kubeconfig.
    pub bootstrap_secret: Option<BootstrapSecretContext>,
    /// For type vcluster: the images as vCluster's configuration spells them.
    pub vcluster: Option<VclusterContext>,
    /// Annotations of the API Service when it is the load balancer (exposure loadBalancer):
    /// external-dns's hostname `<cp>.<domain>` and the `loadBalancer.annotations` setting.
    pub service_annotations: Option<BTreeMap<String, String>>,
    /// kube-apiserver replicas (type k8s: `spec.replicas`, else the `k8s.replicas` setting; 1
    /// for the other types).
    pub replicas: i64,
    /// kube-controller-manager replicas: two once there are two API servers or more (leader
    /// election makes one of them active), else one.
    pub controller_manager_replicas: i64,
    /// Several API servers: disruption budgets, topology spread and a rolling update that keeps
    /// all but one serving.
    pub highly_available: bool,
    /// Type k8s with `spec.backend: dedicated`: its own PostgreSQL in `<cp>-system`.
    pub dedicated_datastore: Option<PostgresContext>,
    /// Type k8s on the shared datastore when it is an existing server (`postgres.mode:
    /// external`): kine takes the TLS mode from `kine-datastore`, as the server's Secret gives it.
    pub external_datastore: bool,
    /// Type k8s with `spec.backup`: its backup CronJob in `kubeflex-system`.
    pub backup: Option<super::backup::BackupContext>,
    /// Type k8s with `spec.restoreFrom`: its restore Job in `kubeflex-system`.
    pub restore: Option<super::backup::RestoreContext>,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BootstrapSecretContext {
    pub name: String,
    pub namespace: String,
    pub key: String,
    /// Whether the Secret is in `<cp>-system` (else in `kubeflex-system`).
    pub in_home: bool,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VclusterContext {
    pub syncer_image: ImageParts,
    pub kubernetes_image: ImageParts,
}

/// An image reference split the way vCluster's configuration holds it.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageParts {
    pub registry: String,
    pub repository: String,
    pub tag: String,
}

/// `images` in templates: full references.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImagesContext {
    pub kflex: String,
    pub kube_apiserver: String,
    pub kube_controller_manager: String,
    pub kine: String,
    pub postgres: String,
    pub k3s: String,
    pub vcluster: String,
    pub vcluster_kubernetes: String,
}

/// `system` in templates: fixed names in `kubeflex-system`.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SystemContext {
    pub namespace: &'static str,
    pub postgres: PostgresContext,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PostgresContext {
    pub name: &'static str,
    /// The Service's in-cluster DNS name, which clients connect to and verify.
    pub host: String,
    pub port: u16,
    /// The admin password's Secret and key.
    pub secret: &'static str,
    pub secret_key: &'static str,
    pub tls_secret: &'static str,
    /// DNS names the server certificate is valid for.
    pub dns_names: Vec<String>,
}

/// `exposure` in templates: how control planes are reached from outside, derived from the
/// settings once so every template agrees.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExposureContext {
    /// `ingress`, `route`, `gateway` or `loadBalancer`.
    pub kind: &'static str,
    /// The type of each control plane's API Service.
    pub service_type: &'static str,
    pub gateway: GatewayContext,
    /// Set for exposure loadBalancer only.
    pub load_balancer: Option<LoadBalancerContext>,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GatewayContext {
    pub name: String,
    pub namespace: String,
    /// The listener TLSRoutes name in their parentRef; `None`: any that allows them.
    pub section_name: Option<String>,
    /// The name of the listener of the Gateway kflex renders.
    pub listener_name: String,
    /// The Gateway kflex renders, if it does (`gateway.create`): its GatewayClass.
    pub class_name: Option<String>,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoadBalancerContext {
    pub class: Option<String>,
    pub source_ranges: Vec<String>,
    /// The kubeconfig publishers name the load balancer's address (`loadBalancer.publishAddress`).
    pub publish_address: bool,
}

impl ExposureContext {
    pub(crate) fn new(settings: &Settings) -> Self {
        let exposure = settings.exposure();
        let service_type = match (exposure, settings.api_server_service_type) {
            (Exposure::LoadBalancer, _) => "LoadBalancer",
            (_, ServiceType::ClusterIP) => "ClusterIP",
            (_, ServiceType::NodePort) => "NodePort",
        };
        let gateway = &settings.gateway;
        let non_empty = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        let load_balancer = &settings.load_balancer;
        Self {
            kind: exposure.as_str(),
            service_type,
            gateway: GatewayContext {
                name: gateway.name.clone(),
                namespace: gateway.namespace.clone(),
                section_name: non_empty(&gateway.section_name),
                listener_name: non_empty(&gateway.section_name)
                    .unwrap_or_else(|| "tls-passthrough".to_owned()),
                class_name: gateway
                    .create
                    .then(|| gateway.class_name.clone())
                    .filter(|class| !class.is_empty()),
            },
            load_balancer: (exposure == Exposure::LoadBalancer).then(|| LoadBalancerContext {
                class: non_empty(&load_balancer.class),
                source_ranges: load_balancer.source_ranges.clone(),
                publish_address: load_balancer.publish_address,
            }),
        }
    }
}

/// The root of a control plane template's context.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ControlPlaneRoot<'a> {
    /// The hosting cluster's Kubernetes minor version (from the `kubeVersion` setting).
    pub hosting_minor: u32,
    pub cp: &'a ControlPlaneContext,
    pub settings: &'a Settings,
    pub images: &'a ImagesContext,
    pub system: &'a SystemContext,
    pub exposure: &'a ExposureContext,
}

/// The root of a system template's context.
#[derive(Serialize, Debug)]
pub(crate) struct SystemRoot<'a> {
    pub settings: &'a Settings,
    pub images: &'a ImagesContext,
    pub system: &'a SystemContext,
    pub exposure: &'a ExposureContext,
    /// The settings as the `kubeflex-config` ConfigMap holds them.
    pub config_data: &'a BTreeMap<String, String>,
    /// The controller's ClusterRole rules for the `hookResources` setting.
    pub hook_rules: Vec<HookRule>,
    /// The volume claims of the `pvc` entries of the setting `backup.storage`.
    pub backup_claims: Vec<&'a crate::settings::PvcStore>,
    /// The setting `backup.allowedRestores`, split: which control plane may be restored from
    /// which other's backups (the admission policy checks the restore Jobs against it).
    pub allowed_restores: Vec<RestorePair<'a>>,
}

/// One entry of `backup.allowedRestores`.
#[derive(Serialize, Debug)]
pub(crate) struct RestorePair<'a> {
    pub source: &'a str,
    pub target: &'a str,
}

/// Resources of one API group that the controller's ClusterRole grants for hooks.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub(crate) struct HookRule {
    /// `""` for the core group.
    pub api_group: String,
    pub resources: Vec<String>,
}

/// `resource.group` items (validated settings) as one rule per group, groups and resources
/// sorted and each once, so the rendered ClusterRole does not change with the order of the list.
pub(crate) fn hook_rules(resources: &[String]) -> Vec<HookRule> {
    let mut by_group: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for item in resources {
        let (resource, group) = item.split_once('.').unwrap_or((item, ""));
        by_group.entry(group).or_default().insert(resource);
    }
    by_group
        .into_iter()
        .map(|(group, resources)| HookRule {
            api_group: group.to_owned(),
            resources: resources.into_iter().map(str::to_owned).collect(),
        })
        .collect()
}

impl ControlPlaneContext {
    /// The context of `cp`, whose images are `images` (from [`ImagesContext::for_control_plane`]).
    pub(crate) fn new(cp: &ControlPlane, settings: &Settings, images: &ImagesContext) -> Self {
        let name = cp.metadata.name.clone().unwrap_or_default();
        let namespace = format!("{name}-system");
        let external_host = format!("{name}.{}", settings.domain);
        let cluster_domain = &settings.cluster_domain;
        let service_names = |service: &str| {
            vec![
                service.to_owned(),
                format!("{service}.{namespace}"),
                format!("{service}.{namespace}.svc"),
                format!("{service}.{namespace}.svc.{cluster_domain}"),
            ]
        };
        let (api_service, in_cluster_url, mut certificate_dns_names) = match cp.spec.type_ {
            ControlPlaneType::K8s => {
                // Names inside the hosted cluster (kubernetes.default...), the API Service in
                // the hosting cluster, the Ingress host and the kind node container (reached
                // through a NodePort).
                let mut names: Vec<String> = [
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local",
                    "localhost",
                ]
                .into_iter()
                .map(str::to_owned)
                .collect();
                names.extend(service_names(&name));
                let url = format!("https://{name}.{namespace}.svc.{cluster_domain}");
                (Some(name.clone()), Some(url), names)
            }
            // k3s and vCluster add their own in-cluster names to the certificate.
            ControlPlaneType::K3s => (
                Some(K3S_SERVICE.to_owned()),
                Some(format!("https://{K3S_SERVICE}.{namespace}.svc")),
                service_names(K3S_SERVICE),
            ),
            ControlPlaneType::Vcluster => (
                Some(VCLUSTER_SERVICE.to_owned()),
                Some(format!("https://{VCLUSTER_SERVICE}.{namespace}")),
                Vec::new(),
            ),
            ControlPlaneType::Host => (None, Some(HOSTING_CLUSTER_URL.to_owned()), Vec::new()),
            ControlPlaneType::External | ControlPlaneType::Ocm => (None, None, Vec::new()),
        };
        if api_service.is_some() {
            certificate_dns_names.extend([external_host.clone(), settings.host_container.clone()]);
        }
        // The host container or domain may repeat a name already in the list.
        let mut seen = std::collections::BTreeSet::new();
        certificate_dns_names.retain(|name| seen.insert(name.clone()));
        let certificate_ip_addresses = if cp.spec.type_ == ControlPlaneType::K8s {
            vec!["127.0.0.1"]
        } else {
            Vec::new()
        };
        let token_expiration_seconds = cp
            .spec
            .token_expiration_seconds
            .unwrap_or(DEFAULT_TOKEN_EXPIRATION_SECONDS);
        let bootstrap_secret =
            cp.spec
                .bootstrap_secret_ref
                .as_ref()
                .map(|secret| BootstrapSecretContext {
                    in_home: secret.namespace == namespace,
                    name: secret.name.clone(),
                    namespace: secret.namespace.clone(),
                    key: secret.in_cluster_key.clone(),
                });
        let vcluster = (cp.spec.type_ == ControlPlaneType::Vcluster).then(|| VclusterContext {
            syncer_image: ImageParts::split(&images.vcluster),
            kubernetes_image: ImageParts::split(&images.vcluster_kubernetes),
        });
        let service_annotations =
            (api_service.is_some() && settings.exposure() == Exposure::LoadBalancer).then(|| {
                let mut annotations = settings.load_balancer.annotations.clone();
                annotations.insert(EXTERNAL_DNS_HOSTNAME.to_owned(), external_host.clone());
                annotations
            });
        let is_k8s = cp.spec.type_ == ControlPlaneType::K8s;
        let replicas = if is_k8s {
            cp.spec
                .replicas
                .map_or_else(|| i64::from(settings.k8s.replicas), i64::from)
        } else {
            1
        };
        let dedicated = is_k8s && cp.spec.backend == Some(BackendDbType::Dedicated);
        let dedicated_datastore =
            dedicated.then(|| PostgresContext::dedicated(&namespace, settings));
        let (backup, restore) = super::backup::contexts(cp, settings);
        Self {
            backup,
            restore,
            replicas,
            controller_manager_replicas: if replicas > 1 { 2 } else { 1 },
            highly_available: replicas > 1,
            external_datastore: is_k8s
                && !dedicated
                && settings.postgres.mode == PostgresMode::External,
            dedicated_datastore,
            certificate_dns_names,
            certificate_ip_addresses,
            type_: cp.spec.type_.as_str(),
            kubernetes_version: kubernetes_version(cp, settings).to_owned(),
            database_name: name.replace('-', "_"),
            external_url: format!("https://{external_host}:{}", settings.external_port),
            api_service,
            in_cluster_url,
            external_host,
            token_refresh_schedule: refresh_schedule(token_expiration_seconds, spread(&name)),
            renew_schedule: {
                let (minute, hour) = spread(&name);
                format!("{minute} {hour} * * *")
            },
            token_expiration_seconds,
            bootstrap_secret,
            vcluster,
            service_annotations,
            namespace,
            name,
        }
    }
}

/// The Service of a k3s control plane's API server (KubeFlex's name).
pub(crate) const K3S_SERVICE: &str = "k3s";
/// The Service of a vcluster control plane (vCluster's name for release `vcluster`).
pub(crate) const VCLUSTER_SERVICE: &str = "vcluster";
/// The hosting cluster's API server, as its own pods reach it.
const HOSTING_CLUSTER_URL: &str = "https://kubernetes.default.svc";
/// KubeFlex's default token lifetime: one year.
const DEFAULT_TOKEN_EXPIRATION_SECONDS: i64 = 31_536_000;

/// A cron schedule for renewing a token of `lifetime_seconds` once less than a third of its
/// lifetime is left: it runs at least twice in that last third, so one failed or late run never
/// lets the token expire. Daily and hourly runs are at the control plane's own `(minute, hour)`
/// ([`spread`]).
fn refresh_schedule(lifetime_seconds: i64, (minute, hour): (u64, u64)) -> String {
    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    let interval = lifetime_seconds / 3 / 2;
    if interval >= DAY {
        format!("{minute} {hour} * * *")
    } else if interval >= HOUR {
        format!("{minute} * * * *")
    } else {
        // The API's minimum lifetime, 600 s, gives every minute.
        let minutes = (interval / MINUTE).clamp(1, 30);
        format!("*/{minutes} * * * *")
    }
}

/// A minute (1–59) and an hour (0–23) of the control plane `name`'s own, so that the daily jobs
/// of many control planes do not all start at one moment, while each control plane's schedule
/// stays the same from one render to the next. FNV-1a, whose output is fixed by its definition
/// (std's hasher may change between Rust releases). Never on the hour: that is when the
/// cluster's `@hourly` and `@daily` jobs start.
fn spread(name: &str) -> (u64, u64) {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    (1 + hash % 59, (hash / 59) % 24)
}

impl ImageParts {
    /// `ghcr.io/loft-sh/kubernetes:v1.36.0` → `ghcr.io`, `loft-sh/kubernetes`, `v1.36.0`. A
    /// digest is dropped: vCluster's configuration has no field for it (the rendered pod keeps
    /// it).
    pub(crate) fn split(reference: &str) -> Self {
        let without_digest = reference.split('@').next().unwrap_or(reference);
        let (path, tag) = match without_digest.rsplit_once(':') {
            Some((path, tag)) if !tag.contains('/') => (path, tag),
            _ => (without_digest, ""),
        };
        let (registry, repository) = match path.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first, rest)
            }
            _ => ("", path),
        };
        Self {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
        }
    }
}

/// The Kubernetes version of `cp`: its own, else the `kubernetesVersion` setting.
fn kubernetes_version<'a>(cp: &'a ControlPlane, settings: &'a Settings) -> &'a str {
    cp.spec
        .kubernetes_version
        .as_deref()
        .unwrap_or(&settings.kubernetes_version)
}

impl ImagesContext {
    /// The images of `cp`, whose Kubernetes version picks the default tags.
    pub(crate) fn for_control_plane(settings: &Settings, cp: &ControlPlane) -> Self {
        Self::new(
            settings,
            kubernetes_version(cp, settings),
            cp.spec.kubernetes_version.as_deref(),
        )
    }

    /// Image references: the Kubernetes components default to `kubernetes_version`; vCluster's
    /// Kubernetes image to `spec_version` (a control plane's own), else vCluster's default.
    pub(crate) fn new(
        settings: &Settings,
        kubernetes_version: &str,
        spec_version: Option<&str>,
    ) -> Self {
        let mirror = settings.image_registry.as_str();
        let images = &settings.images;
        let vcluster_version = spec_version.unwrap_or(VCLUSTER_KUBERNETES_VERSION);
        Self {
            kflex: images.kflex.reference(mirror, ""),
            kube_apiserver: images.kube_apiserver.reference(mirror, kubernetes_version),
            kube_controller_manager: images
                .kube_controller_manager
                .reference(mirror, kubernetes_version),
            kine: images.kine.reference(mirror, ""),
            postgres: images.postgres.reference(mirror, ""),
            k3s: images
                .k3s
                .reference(mirror, &format!("{kubernetes_version}-k3s1")),
            vcluster: images.vcluster.reference(mirror, ""),
            vcluster_kubernetes: images
                .vcluster_kubernetes
                .reference(mirror, vcluster_version),
        }
    }
}

impl SystemContext {
    pub(crate) fn new(settings: &Settings) -> Self {
        Self {
            namespace: SYSTEM_NAMESPACE,
            postgres: PostgresContext::in_namespace(
                POSTGRES_NAME,
                POSTGRES_TLS_SECRET,
                SYSTEM_NAMESPACE,
                settings,
            ),
        }
    }
}

impl PostgresContext {
    /// A server rendered by kflex: StatefulSet, Service and password Secret `name`, TLS Secret
    /// `tls_secret`, in `namespace`.
    fn in_namespace(
        name: &'static str,
        tls_secret: &'static str,
        namespace: &str,
        settings: &Settings,
    ) -> Self {
        let service = format!("{name}.{namespace}");
        let host = format!("{service}.svc.{}", settings.cluster_domain);
        Self {
            name,
            dns_names: vec![
                name.to_owned(),
                service.clone(),
                format!("{service}.svc"),
                host.clone(),
            ],
            host,
            port: POSTGRES_PORT,
            secret: name,
            secret_key: POSTGRES_PASSWORD_KEY,
            tls_secret,
        }
    }

    /// The dedicated server of the k8s control plane whose namespace is `namespace`.
    fn dedicated(namespace: &str, settings: &Settings) -> Self {
        Self::in_namespace(
            DEDICATED_POSTGRES_NAME,
            DEDICATED_POSTGRES_TLS_SECRET,
            namespace,
            settings,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest gap between two runs of `schedule` (every N minutes, hourly or daily).
    fn longest_gap_seconds(schedule: &str) -> i64 {
        let minute = schedule.split(' ').next().unwrap_or_default();
        if let Some(step) = minute.strip_prefix("*/") {
            // `*/N` restarts at every hour: the gap across the hour is at most N.
            return step.parse::<i64>().unwrap() * 60;
        }
        if schedule.ends_with("* * * *") {
            3600
        } else {
            86_400
        }
    }

    #[test]
    fn renewal_runs_at_least_twice_in_the_last_third_of_a_token_lifetime() {
        // Each band's edges and the values users pick.
        for lifetime in [
            600, 899, 900, 3599, 3600, 21_599, 21_600, 86_400, 518_399, 518_400, 31_536_000,
        ] {
            let schedule = refresh_schedule(lifetime, (23, 4));
            let window = lifetime / 3;
            assert!(
                2 * longest_gap_seconds(&schedule) <= window,
                "{lifetime}: {schedule} leaves no room for a failed run"
            );
        }
        assert_eq!(refresh_schedule(31_536_000, (23, 4)), "23 4 * * *");
        assert_eq!(refresh_schedule(86_400, (23, 4)), "23 * * * *");
        assert_eq!(refresh_schedule(600, (23, 4)), "*/1 * * * *");
    }

    #[test]
    fn control_planes_renew_at_times_of_their_own() {
        // Fixed by FNV-1a's definition: a change here moves every existing CronJob.
        assert_eq!(spread("cp1"), (53, 3));
        assert_eq!(spread("cp2"), (54, 13));
        let times: std::collections::BTreeSet<(u64, u64)> =
            (0..200).map(|i| spread(&format!("cp{i}"))).collect();
        assert!(
            times
                .iter()
                .all(|&(minute, hour)| (1..=59).contains(&minute) && hour < 24)
        );
        assert!(
            times.len() > 150,
            "200 control planes share {} times",
            times.len()
        );
        let hours: std::collections::BTreeSet<u64> = times.iter().map(|&(_, hour)| hour).collect();
        assert_eq!(hours.len(), 24, "every hour of the day is used");
    }

    #[test]
    fn image_references_split_like_vcluster_spells_them() {
        let parts = ImageParts::split("mirror.corp:5000/hub/loft-sh/kubernetes:v1.36.0@sha256:ab");
        assert_eq!(
            parts,
            ImageParts {
                registry: "mirror.corp:5000".into(),
                repository: "hub/loft-sh/kubernetes".into(),
                tag: "v1.36.0".into(),
            }
        );
        let parts = ImageParts::split("loft-sh/vcluster-oss:0.36.1");
        assert_eq!(
            (parts.registry.as_str(), parts.tag.as_str()),
            ("", "0.36.1")
        );
        let parts = ImageParts::split("localhost:5000/vcluster");
        assert_eq!(
            (
                parts.registry.as_str(),
                parts.repository.as_str(),
                parts.tag.as_str()
            ),
            ("localhost:5000", "vcluster", "")
        );
    }
}
