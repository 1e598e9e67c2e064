//! `kflex adopt`: make an existing cluster a control plane of type external. The adopted
//! context's kubeconfig is reduced to that one context, with every file it references embedded
//! (the hosting cluster cannot read the user's files), stored as Secret
//! `kubeflex-system/<name>-bootstrap`, and the ControlPlane is created and waited for like
//! `create` does.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kflex_core::api::{
    BootstrapSecretReference, ControlPlane, ControlPlaneSpec, validate_control_plane,
};
use kflex_core::settings::SYSTEM_NAMESPACE;
use serde_json::{Map, Value, json};

use super::create::{create, hook_fields, parse_var};
use super::kubeconfig::{Kubeconfigs, Section, Sources};
use super::session::{KubeconfigArgs, Session};

const EXAMPLES: &str = "Examples:
  kflex adopt edge1 --adopted-context kind-edge1 --url-override https://edge1-control-plane:6443
  kflex adopt prod --adopted-kubeconfig ~/prod.kubeconfig --adopted-context prod-admin";

/// The key of the bootstrap Secret holding the kubeconfig.
const BOOTSTRAP_KEY: &str = "kubeconfig-incluster";

/// Adopt an existing cluster as a control plane of type external
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct AdoptArgs {
    /// The control plane's name
    name: String,
    /// Kubeconfig with the cluster to adopt [default: the user's kubeconfig]
    #[arg(short = 'a', long, value_name = "FILE")]
    adopted_kubeconfig: Option<PathBuf>,
    /// Context of the cluster to adopt
    #[arg(short = 'c', long, value_name = "CONTEXT")]
    adopted_context: String,
    /// API server URL the hosting cluster reaches the adopted cluster at, if the kubeconfig's
    /// does not work from inside it
    #[arg(short = 'u', long, value_name = "URL")]
    url_override: Option<String>,
    /// Lifetime of the token kflex mints on the adopted cluster, in seconds
    #[arg(short = 'x', long, value_name = "SECONDS")]
    expiration_seconds: Option<i64>,
    /// PostCreateHook to run once it is adopted (repeat for several)
    #[arg(short = 'p', long = "postcreate-hook", value_name = "HOOK")]
    hooks: Vec<String>,
    /// A hook variable, NAME=VALUE (repeat for several)
    #[arg(short = 'e', long = "set", value_name = "NAME=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    #[command(flatten)]
    waiting: super::wait::Waiting,
    #[command(flatten)]
    kubeconfig: KubeconfigArgs,
}

pub(crate) fn run(args: AdoptArgs) -> anyhow::Result<()> {
    let adopted_sources = match &args.adopted_kubeconfig {
        Some(path) => Sources::resolve(Some(path), None, None)?,
        None => Sources::from_env(args.kubeconfig.kubeconfig.as_deref())?,
    };
    let adopted = Kubeconfigs::load(&adopted_sources)?;
    let kubeconfig = minimal_kubeconfig(
        &adopted,
        &args.adopted_context,
        args.url_override.as_deref(),
    )?;
    let text = kflex_core::manifest::to_yaml_document(&Value::Object(kubeconfig))?;

    let mut spec: ControlPlaneSpec = serde_json::from_value(json!({"type": "external"}))?;
    let secret_name = format!("{}-bootstrap", args.name);
    spec.bootstrap_secret_ref = Some(BootstrapSecretReference {
        name: secret_name.clone(),
        namespace: SYSTEM_NAMESPACE.to_owned(),
        in_cluster_key: BOOTSTRAP_KEY.to_owned(),
    });
    if let Some(seconds) = args.expiration_seconds {
        spec.token_expiration_seconds = Some(seconds);
    }
    hook_fields(&mut spec, &args.hooks, &args.vars)?;
    let cp = ControlPlane::new(&args.name, spec);
    validate_control_plane(&cp).map_err(|err| anyhow::anyhow!("{err}"))?;
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name, "namespace": SYSTEM_NAMESPACE},
        "type": "Opaque",
        "stringData": {BOOTSTRAP_KEY: text},
    }))?;

    let mut session = Session::load(&args.kubeconfig)?;
    let runtime = super::runtime()?;
    runtime.block_on(create(&mut session, cp, Some(secret), args.waiting))
}

/// A kubeconfig with only `context`, its cluster and its user, every referenced file embedded,
/// the server replaced by `url_override` if given, and the result usable from inside a cluster.
pub(crate) fn minimal_kubeconfig(
    kubeconfigs: &Kubeconfigs,
    context: &str,
    url_override: Option<&str>,
) -> anyhow::Result<Map<String, Value>> {
    let (_, context_entry) = kubeconfigs
        .entry_with_file(Section::Contexts, context)
        .with_context(|| {
            format!(
                "there is no context {context:?} in {}",
                kubeconfigs.describe_paths()
            )
        })?;
    let body = context_entry.get("context").cloned().unwrap_or(json!({}));
    let field = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (cluster_name, user_name) = (field("cluster"), field("user"));
    let (cluster_file, cluster) = kubeconfigs
        .entry_with_file(Section::Clusters, &cluster_name)
        .with_context(|| {
            format!(
                "context {context:?} names cluster {cluster_name:?}, which is not in the kubeconfig"
            )
        })?;
    let (user_file, user) = kubeconfigs
        .entry_with_file(Section::Users, &user_name)
        .with_context(|| {
            format!("context {context:?} names user {user_name:?}, which is not in the kubeconfig")
        })?;
    let mut cluster = cluster.get("cluster").cloned().unwrap_or(json!({}));
    let mut user = user.get("user").cloned().unwrap_or(json!({}));
    embed(&mut cluster, "certificate-authority", cluster_file)
        .with_context(|| format!("cluster {cluster_name:?}"))?;
    for key in ["client-certificate", "client-key"] {
        embed(&mut user, key, user_file).with_context(|| format!("user {user_name:?}"))?;
    }
    if let Some(token_file) = user
        .get("tokenFile")
        .and_then(Value::as_str)
        .map(str::to_owned)
    {
        let path = relative_to(user_file, &token_file);
        let token = std::fs::read_to_string(&path)
            .with_context(|| format!("user {user_name:?}: reading tokenFile {}", path.display()))?;
        user["token"] = json!(token.trim());
        if let Some(user) = user.as_object_mut() {
            user.remove("tokenFile");
        }
    }
    for unusable in ["exec", "auth-provider"] {
        if user.get(unusable).is_some() {
            bail!(
                "user {user_name:?} of context {context:?} authenticates with {unusable}, which \
                 cannot run inside the hosting cluster; adopt with a context whose user has a \
                 token or a client certificate"
            );
        }
    }
    if let Some(url) = url_override {
        cluster["server"] = json!(url);
    }
    let server = cluster
        .get("server")
        .and_then(Value::as_str)
        .unwrap_or_default();
    check_server(server, url_override.is_some())
        .with_context(|| format!("the adopted cluster's server {server:?}"))?;
    let mut context_body = json!({"cluster": cluster_name, "user": context});
    if let Some(namespace) = body.get("namespace") {
        context_body["namespace"] = namespace.clone();
    }
    let document = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": context, "user": user}],
        "contexts": [{"name": context, "context": context_body}],
        "current-context": context,
    });
    Ok(document.as_object().cloned().unwrap_or_default())
}

fn relative_to(file: &Path, reference: &str) -> PathBuf {
    let reference = Path::new(reference);
    match file.parent() {
        Some(directory) if reference.is_relative() => directory.join(reference),
        _ => reference.to_owned(),
    }
}

/// Replaces file reference `key` with `<key>-data`, read relative to the kubeconfig `file`.
fn embed(entry: &mut Value, key: &str, file: &Path) -> anyhow::Result<()> {
    let Some(object) = entry.as_object_mut() else {
        return Ok(());
    };
    let Some(reference) = object.remove(key) else {
        return Ok(());
    };
    let reference = reference.as_str().unwrap_or_default();
    let path = relative_to(file, reference);
    let bytes =
        std::fs::read(&path).with_context(|| format!("reading {key} {}", path.display()))?;
    object.insert(
        format!("{key}-data"),
        json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
    );
    Ok(())
}

/// The hosting cluster must be able to reach `server`: http(s), a host, no credentials,
/// query or fragment, and not this machine's loopback (whatever the port: KubeFlex let
/// `127.0.0.1:6443` through).
pub(crate) fn check_server(server: &str, overridden: bool) -> anyhow::Result<()> {
    let hint = if overridden {
        ""
    } else {
        "; give the address the hosting cluster reaches it at with --url-override"
    };
    let uri: http::Uri = server
        .parse()
        .map_err(|err| anyhow::anyhow!("is not a URL ({err}){hint}"))?;
    if !matches!(uri.scheme_str(), Some("https" | "http")) {
        bail!("must be an http or https URL{hint}");
    }
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    if authority.contains('@') {
        bail!("must not carry credentials");
    }
    if uri.query().is_some() {
        bail!("must not have a query");
    }
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        bail!("has no host{hint}");
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback());
    if loopback {
        bail!("is this machine's loopback address, which the hosting cluster cannot reach{hint}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exec_user_is_refused_and_files_are_embedded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "file-token\n").unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            "clusters:\n- name: c\n  cluster: {server: 'https://edge:6443'}\n\
             users:\n- name: cloud\n  user: {exec: {command: aws}}\n- name: file\n  user: {tokenFile: token}\n\
             contexts:\n- name: cloud\n  context: {cluster: c, user: cloud}\n- name: file\n  context: {cluster: c, user: file}\n",
        )
        .unwrap();
        let kubeconfigs =
            Kubeconfigs::load(&Sources::resolve(Some(&config), None, None).unwrap()).unwrap();
        let err = minimal_kubeconfig(&kubeconfigs, "cloud", None).unwrap_err();
        assert!(
            err.to_string().contains("user \"cloud\"") && err.to_string().contains("exec"),
            "{err}"
        );
        let minimal = minimal_kubeconfig(&kubeconfigs, "file", None).unwrap();
        assert_eq!(
            minimal["users"][0],
            json!({"name": "file", "user": {"token": "file-token"}})
        );
        assert_eq!(
            minimal["contexts"].as_array().map(Vec::len),
            Some(1),
            "only the adopted context"
        );
    }

    #[test]
    fn loopback_servers_are_refused_whatever_the_port() {
        for server in [
            "https://127.0.0.1:6443",
            "https://localhost:443",
            "https://[::1]:6443",
            "https://127.0.0.2",
        ] {
            let err = check_server(server, false).unwrap_err();
            assert!(
                err.to_string().contains("--url-override"),
                "{server}: {err}"
            );
        }
        check_server("https://edge1-control-plane:6443", false).unwrap();
        assert!(check_server("ftp://a", true).is_err());
        assert!(check_server("https://u:p@a", true).is_err());
        assert!(check_server("https://a?x=1", true).is_err());
    }
}
