//! Kubeconfig files: building them (with kube-rs's own types, so what kflex writes is what
//! kube-rs and kubectl read), reading the parts renewal decisions need, and pointing them at
//! another server. kube-rs's parse errors quote the text around the error, which in a kubeconfig
//! is tokens and keys: every kubeconfig kflex parses with kube-rs goes through [`parse`],
//! [`read_file`] or [`infer_client`], which say line, column and reason instead.

use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use kflex_core::yaml::{self, ParseError};
use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, KubeconfigError, NamedAuthInfo,
    NamedCluster, NamedContext,
};
use secrecy::{ExposeSecret as _, SecretString};

pub use super::address::Endpoint;

fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// How the user authenticates.
#[derive(Debug)]
pub enum Credentials<'a> {
    ClientCertificate { cert_pem: &'a str, key_pem: &'a str },
    Token(&'a str),
}

/// A kubeconfig with one cluster, one user and one context, which is current.
pub fn single(
    cluster: NamedCluster,
    user: &str,
    credentials: Credentials<'_>,
    context: &str,
    namespace: Option<&str>,
) -> Kubeconfig {
    let mut auth_info = AuthInfo::default();
    match credentials {
        Credentials::ClientCertificate { cert_pem, key_pem } => {
            auth_info.client_certificate_data = Some(encode_base64(cert_pem.as_bytes()));
            auth_info.client_key_data = Some(SecretString::from(encode_base64(key_pem.as_bytes())));
        }
        Credentials::Token(token) => auth_info.token = Some(SecretString::from(token.to_owned())),
    }
    Kubeconfig {
        api_version: Some("v1".to_owned()),
        kind: Some("Config".to_owned()),
        contexts: vec![NamedContext {
            name: context.to_owned(),
            context: Some(Context {
                cluster: cluster.name.clone(),
                user: Some(user.to_owned()),
                namespace: namespace.map(str::to_owned),
                ..Context::default()
            }),
            other: Default::default(),
        }],
        clusters: vec![cluster],
        auth_infos: vec![NamedAuthInfo {
            name: user.to_owned(),
            auth_info: Some(auth_info),
            other: Default::default(),
        }],
        current_context: Some(context.to_owned()),
        ..Kubeconfig::default()
    }
}

/// A cluster entry for `server`, trusting `ca_pem`.
pub fn cluster(name: &str, server: &str, ca_pem: &str) -> NamedCluster {
    cluster_at(name, &Endpoint::plain(server), ca_pem)
}

/// A cluster entry for `endpoint`, trusting `ca_pem`.
pub fn cluster_at(name: &str, endpoint: &Endpoint, ca_pem: &str) -> NamedCluster {
    NamedCluster {
        name: name.to_owned(),
        cluster: Some(Cluster {
            server: Some(endpoint.server.clone()),
            tls_server_name: endpoint.tls_server_name.clone(),
            certificate_authority_data: Some(encode_base64(ca_pem.as_bytes())),
            ..Cluster::default()
        }),
        other: Default::default(),
    }
}

/// The kubeconfig as YAML (keys sorted, strings quoted where YAML 1.1 readers need it).
pub fn to_yaml(kubeconfig: &Kubeconfig) -> anyhow::Result<String> {
    // kube-rs writes secrets as-is only through its own serializer; go through JSON values.
    let value = serde_json::to_value(kubeconfig).context("encoding the kubeconfig")?;
    kflex_core::manifest::to_yaml_document(&value).context("writing the kubeconfig")
}

/// Parses a kubeconfig as kube-rs (and kubectl) would.
pub fn parse(bytes: &[u8]) -> anyhow::Result<Kubeconfig> {
    let text = std::str::from_utf8(bytes).context("the kubeconfig is not UTF-8")?;
    // kflex's limits first: kube-rs parses with serde-saphyr's defaults.
    yaml::check(text, yaml::Limits::default())
        .map_err(|err| anyhow::anyhow!("the kubeconfig does not parse: {err}"))?;
    Kubeconfig::from_yaml(text).map_err(|err| anyhow::anyhow!(without_text(err)))
}

/// Reads and parses a kubeconfig file as kube-rs does (file references in it made absolute).
/// For a file kflex has read and checked already ([`crate::cli::kubeconfig::files::File::read`]).
pub fn read_file(path: &Path) -> anyhow::Result<Kubeconfig> {
    Kubeconfig::read_from(path).map_err(|err| anyhow::anyhow!(without_text(err)))
}

/// A client configured as kube-rs's `Client::try_default` configures it: from `$KUBECONFIG`
/// (or `~/.kube/config`), else from the pod's service account.
pub async fn infer_client() -> anyhow::Result<kube::Client> {
    let config = match kube::Config::from_kubeconfig(&KubeConfigOptions::default()).await {
        Ok(config) => config,
        Err(kubeconfig) => kube::Config::incluster().map_err(|in_cluster| {
            anyhow::anyhow!(
                "no usable configuration: in-cluster: {in_cluster}; kubeconfig: {}",
                without_text(kubeconfig)
            )
        })?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}

/// kube-rs's error in words that never quote the kubeconfig: a parse error (whose message
/// would show the lines around it) as line, column and reason.
fn without_text(err: KubeconfigError) -> String {
    match err {
        KubeconfigError::Parse(inner) => format!(
            "the kubeconfig does not parse: {}",
            ParseError::from_saphyr(&inner, yaml::Limits::default())
        ),
        other => format!("the kubeconfig does not parse: {other}"),
    }
}

/// The parts of a kubeconfig's current context that decide whether it is still right.
#[derive(Debug)]
pub struct Current<'a> {
    pub context: &'a NamedContext,
    pub cluster: &'a NamedCluster,
    pub user: Option<&'a NamedAuthInfo>,
}

impl Current<'_> {
    pub fn server(&self) -> Option<&str> {
        self.cluster.cluster.as_ref()?.server.as_deref()
    }

    /// The name the server's certificate is checked against, when not the server's host.
    pub fn tls_server_name(&self) -> Option<&str> {
        self.cluster.cluster.as_ref()?.tls_server_name.as_deref()
    }

    /// The CA the cluster entry trusts, if given inline.
    pub fn ca_pem(&self) -> Option<String> {
        let data = self
            .cluster
            .cluster
            .as_ref()?
            .certificate_authority_data
            .as_deref()?;
        decode_text(data)
    }

    pub fn client_cert_pem(&self) -> Option<String> {
        let data = self
            .user?
            .auth_info
            .as_ref()?
            .client_certificate_data
            .as_deref()?;
        decode_text(data)
    }

    /// The bearer token, for inspecting its claims (never for printing).
    pub fn token(&self) -> Option<String> {
        let token = self.user?.auth_info.as_ref()?.token.as_ref()?;
        Some(token.expose_secret().to_owned())
    }
}

fn decode_text(data: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The current context of `kubeconfig`, its cluster and its user.
pub fn current(kubeconfig: &Kubeconfig) -> anyhow::Result<Current<'_>> {
    let name = kubeconfig
        .current_context
        .as_deref()
        .filter(|n| !n.is_empty())
        .context("the kubeconfig has no current-context")?;
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == name)
        .with_context(|| format!("the kubeconfig has no context {name:?} (its current-context)"))?;
    let cluster_name = context
        .context
        .as_ref()
        .map(|c| c.cluster.as_str())
        .with_context(|| format!("context {name:?} names no cluster"))?;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .with_context(|| format!("the kubeconfig has no cluster {cluster_name:?}"))?;
    let user = context
        .context
        .as_ref()
        .and_then(|c| c.user.as_deref())
        .and_then(|user| kubeconfig.auth_infos.iter().find(|u| u.name == user));
    Ok(Current {
        context,
        cluster,
        user,
    })
}

/// `kubeconfig` with every cluster's server replaced by `server`.
pub fn with_server(kubeconfig: &Kubeconfig, server: &str) -> anyhow::Result<Kubeconfig> {
    with_endpoint(kubeconfig, &Endpoint::plain(server))
}

/// `kubeconfig` with every cluster's server and certificate name set as `endpoint` says (a
/// certificate name another endpoint set is removed when this one has none).
pub fn with_endpoint(kubeconfig: &Kubeconfig, endpoint: &Endpoint) -> anyhow::Result<Kubeconfig> {
    if kubeconfig.clusters.is_empty() {
        bail!("the kubeconfig has no cluster");
    }
    let mut changed = kubeconfig.clone();
    for cluster in &mut changed.clusters {
        let entry = cluster.cluster.get_or_insert_with(Cluster::default);
        entry.server = Some(endpoint.server.clone());
        entry.tls_server_name = endpoint.tls_server_name.clone();
    }
    Ok(changed)
}

/// The `exp` and `iat` claims (Unix seconds) of a JWT, read without verifying it: kflex only
/// needs to know when to ask for a new one.
pub fn token_times(token: &str) -> Option<(i64, i64)> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some((claims.get("iat")?.as_i64()?, claims.get("exp")?.as_i64()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_kubeconfig_reads_back_with_kube_rs() {
        let kubeconfig = single(
            cluster("cp1-cluster", "https://cp1.example:9443", "CA PEM"),
            "cp1-admin",
            Credentials::ClientCertificate {
                cert_pem: "CERT",
                key_pem: "KEY",
            },
            "cp1",
            Some("default"),
        );
        let parsed = parse(to_yaml(&kubeconfig).unwrap().as_bytes()).unwrap();
        let current = current(&parsed).unwrap();
        assert_eq!(current.server(), Some("https://cp1.example:9443"));
        assert_eq!(current.ca_pem().as_deref(), Some("CA PEM"));
        assert_eq!(current.client_cert_pem().as_deref(), Some("CERT"));
        assert_eq!(current.context.name, "cp1");
        let moved = with_server(&parsed, "https://cp1.cp1-system.svc").unwrap();
        assert_eq!(current_server(&moved), "https://cp1.cp1-system.svc");
        // A certificate name written as kubectl reads it, and removed with the next endpoint.
        let named = with_endpoint(
            &parsed,
            &Endpoint {
                server: "https://203.0.113.7:9443".into(),
                tls_server_name: Some("cp1.example".into()),
            },
        )
        .unwrap();
        let text = to_yaml(&named).unwrap();
        assert!(text.contains("tls-server-name: cp1.example"), "{text}");
        let read = parse(text.as_bytes()).unwrap();
        assert_eq!(
            super::current(&read).unwrap().tls_server_name(),
            Some("cp1.example")
        );
        let plain = with_server(&read, "https://cp1.example:9443").unwrap();
        assert_eq!(super::current(&plain).unwrap().tls_server_name(), None);
    }

    fn current_server(kubeconfig: &Kubeconfig) -> String {
        current(kubeconfig).unwrap().server().unwrap().to_owned()
    }

    #[test]
    fn token_claims_are_read_without_verification() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"iat":100,"exp":700,"sub":"system:serviceaccount:x:y"}"#);
        assert_eq!(token_times(&format!("h.{payload}.s")), Some((100, 700)));
        assert_eq!(token_times("not-a-jwt"), None);
    }

    #[test]
    fn parse_errors_never_quote_the_kubeconfig() {
        let marker = "SECRET-TOKEN-123";
        for text in [
            format!("users:\n- name: u\n  user:\n    token: {marker}\n  bad: [\n"),
            format!("users:\n- name: u\n  user:\n    token: [{marker}]\n"),
            "users:\n- name: u\n  user:\n    token: {first: 123}\n".to_owned(),
            format!("users:\n- name: u\n  user:\n    token: a\n    token: {marker}\n"),
            format!("clusters: {marker}\n"),
        ] {
            let err = match parse(text.as_bytes()) {
                Ok(_) => panic!("parses: {text}"),
                Err(err) => format!("{err:#}"),
            };
            assert!(
                err.starts_with("the kubeconfig does not parse: line "),
                "{err}"
            );
            assert!(!err.contains(marker) && !err.contains("123"), "{err}");
        }
    }

    #[test]
    fn a_kubeconfig_without_current_context_is_an_error() {
        let err = current(&Kubeconfig::default()).unwrap_err();
        assert!(err.to_string().contains("no current-context"), "{err}");
    }
}
