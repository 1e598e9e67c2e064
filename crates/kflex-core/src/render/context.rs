//! The values templates see. Everything derived from settings and the control plane is computed
//! here once, so templates stay declarative and agree with each other.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::ControlPlane;
use crate::settings::{SYSTEM_NAMESPACE, Settings};

/// Name of the shared PostgreSQL's Service, StatefulSet and admin Secret (KubeFlex's names).
pub(crate) const POSTGRES_NAME: &str = "postgres-postgresql";
/// Key of the admin password in the Secret [`POSTGRES_NAME`].
pub(crate) const POSTGRES_PASSWORD_KEY: &str = "postgres-password";
/// The server's TLS certificate and key, and the CA clients verify it with.
pub(crate) const POSTGRES_TLS_SECRET: &str = "postgres-postgresql-tls";
pub(crate) const POSTGRES_PORT: u16 = 5432;

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
    /// `<cp>` with `-` replaced by `_`: its database and role in the shared Postgres.
    pub database_name: String,
    /// `<cp>.<domain>`: the host of the Ingress.
    pub external_host: String,
    /// `https://<cp>.<domain>:<externalPort>`: the API server from outside the hosting cluster.
    pub external_url: String,
    /// `<cp>.<cp>-system.svc.<clusterDomain>`: the API Service from inside.
    pub service_host: String,
    /// `https://<serviceHost>`.
    pub in_cluster_url: String,
    /// DNS names the API server certificate is valid for.
    pub certificate_dns_names: Vec<String>,
    /// IP addresses the API server certificate is valid for.
    pub certificate_ip_addresses: Vec<&'static str>,
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

/// The root of a control plane template's context.
#[derive(Serialize, Debug)]
pub(crate) struct ControlPlaneRoot<'a> {
    pub cp: &'a ControlPlaneContext,
    pub settings: &'a Settings,
    pub images: &'a ImagesContext,
    pub system: &'a SystemContext,
}

/// The root of a system template's context.
#[derive(Serialize, Debug)]
pub(crate) struct SystemRoot<'a> {
    pub settings: &'a Settings,
    pub images: &'a ImagesContext,
    pub system: &'a SystemContext,
    /// The settings as the `kubeflex-config` ConfigMap holds them.
    pub config_data: &'a BTreeMap<String, String>,
}

impl ControlPlaneContext {
    pub(crate) fn new(cp: &ControlPlane, settings: &Settings) -> Self {
        let name = cp.metadata.name.clone().unwrap_or_default();
        let namespace = format!("{name}-system");
        let external_host = format!("{name}.{}", settings.domain);
        let service_host = format!("{name}.{namespace}.svc.{}", settings.cluster_domain);
        // Names inside the hosted cluster (kubernetes.default...), the API Service in the hosting
        // cluster, the Ingress host and the kind node container (reached through a NodePort).
        let mut certificate_dns_names: Vec<String> = [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "localhost",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        certificate_dns_names.extend([
            name.clone(),
            format!("{name}.{namespace}"),
            format!("{name}.{namespace}.svc"),
            service_host.clone(),
            external_host.clone(),
            settings.host_container.clone(),
        ]);
        // The host container or domain may repeat a name already in the list.
        let mut seen = std::collections::BTreeSet::new();
        certificate_dns_names.retain(|name| seen.insert(name.clone()));
        Self {
            certificate_dns_names,
            certificate_ip_addresses: vec!["127.0.0.1"],
            type_: cp.spec.type_.as_str(),
            kubernetes_version: cp
                .spec
                .kubernetes_version
                .clone()
                .unwrap_or_else(|| settings.kubernetes_version.clone()),
            database_name: name.replace('-', "_"),
            external_url: format!("https://{external_host}:{}", settings.external_port),
            in_cluster_url: format!("https://{service_host}"),
            external_host,
            service_host,
            namespace,
            name,
        }
    }
}

impl ImagesContext {
    /// Image references; the Kubernetes components default to `kubernetes_version`.
    pub(crate) fn new(settings: &Settings, kubernetes_version: &str) -> Self {
        let mirror = settings.image_registry.as_str();
        let images = &settings.images;
        Self {
            kflex: images.kflex.reference(mirror, ""),
            kube_apiserver: images.kube_apiserver.reference(mirror, kubernetes_version),
            kube_controller_manager: images
                .kube_controller_manager
                .reference(mirror, kubernetes_version),
            kine: images.kine.reference(mirror, ""),
            postgres: images.postgres.reference(mirror, ""),
        }
    }
}

impl SystemContext {
    pub(crate) fn new(settings: &Settings) -> Self {
        let service = format!("{POSTGRES_NAME}.{SYSTEM_NAMESPACE}");
        let host = format!("{service}.svc.{}", settings.cluster_domain);
        Self {
            namespace: SYSTEM_NAMESPACE,
            postgres: PostgresContext {
                name: POSTGRES_NAME,
                dns_names: vec![
                    POSTGRES_NAME.to_owned(),
                    service.clone(),
                    format!("{service}.svc"),
                    host.clone(),
                ],
                host,
                port: POSTGRES_PORT,
                secret: POSTGRES_NAME,
                secret_key: POSTGRES_PASSWORD_KEY,
                tls_secret: POSTGRES_TLS_SECRET,
            },
        }
    }
}
