//! `kflex create`: create a ControlPlane, wait for it, and switch to it.
//!
//! Everything that can be checked is checked before anything is created: the name and fields
//! (the CRD's rules), that the hooks exist (KubeFlex exited 0 without them, #235), that the
//! hosting cluster's controller would render it, that the hosting cluster can serve its
//! exposure (TLSRoutes and the Gateway, for exposure gateway), and for type external that its
//! bootstrap Secret is there. Only then the ControlPlane is created; waiting for it follows.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Secret;
use kflex_core::api::{
    BackendDbType, BootstrapSecretReference, ControlPlane, ControlPlaneSpec, ControlPlaneType,
    PostCreateHook, PostCreateHookUse, validate_control_plane,
};
use kflex_core::settings::SYSTEM_NAMESPACE;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource as _};
use serde_json::json;

use super::render::TypeArg;
use super::session::{KubeconfigArgs, Session};
use super::wait::Waiting;

const EXAMPLES: &str = "Examples:
  kflex create cp1                               # type k8s, wait until Ready, switch to it
  kflex create cp2 --type vcluster
  kflex create cp5 --backend dedicated --replicas 3   # its own PostgreSQL, three API servers
  kflex create cp3 --type k3s -p tenant-namespaces --set Namespaces=staging
                  # the hook examples/argocd/tenants/hooks/tenant-namespaces.yaml, applied first
  kflex create edge --type host                  # the hosting cluster itself
  kflex create cp4 --wait=false                  # return once created (`kflex ctx cp4` later)";

/// Create a control plane, wait until it is Ready and switch to its context
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct CreateArgs {
    /// The control plane's name (its namespace is <name>-system)
    name: String,
    /// Type of control plane
    #[arg(short = 't', long = "type", value_enum, default_value = "k8s")]
    type_: TypeArg,
    /// Where a k8s control plane keeps its data: a database in the shared PostgreSQL, or a
    /// PostgreSQL of its own [default for k8s: shared]
    #[arg(
        short = 'b',
        long = "backend",
        visible_alias = "backend-type",
        value_enum
    )]
    backend: Option<BackendArg>,
    /// kube-apiserver replicas of a k8s control plane [default: the setting k8s.replicas]
    #[arg(long, value_name = "N")]
    replicas: Option<i32>,
    /// PostCreateHook to run once it is up (repeat for several)
    #[arg(short = 'p', long = "postcreate-hook", value_name = "HOOK", value_parser = super::hook_name)]
    hooks: Vec<String>,
    /// A hook variable, NAME=VALUE (repeat for several)
    #[arg(short = 'e', long = "set", value_name = "NAME=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Be Ready only once every hook's objects are ready
    #[arg(long)]
    wait_for_hooks: bool,
    /// Kubernetes version of the control plane (k8s, k3s, vcluster)
    #[arg(long, value_name = "VERSION")]
    kubernetes_version: Option<String>,
    #[command(flatten)]
    waiting: Waiting,
    #[command(flatten)]
    kubeconfig: KubeconfigArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BackendArg {
    Shared,
    Dedicated,
}

/// `NAME=VALUE`, split at the first `=`, the name trimmed and not empty.
pub(crate) fn parse_var(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{text:?} has an empty name"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// Hook uses from `-p` and `--set`: one hook as KubeFlex writes it, several as a list.
pub(crate) fn hook_fields(
    spec: &mut ControlPlaneSpec,
    hooks: &[String],
    vars: &[(String, String)],
) -> anyhow::Result<()> {
    let vars: BTreeMap<String, String> = vars.iter().cloned().collect();
    match hooks {
        [] if !vars.is_empty() => bail!("--set gives hook variables: name a hook with -p"),
        [] => {}
        [hook] => {
            spec.post_create_hook = Some(hook.clone());
            spec.post_create_hook_vars = Some(vars).filter(|vars| !vars.is_empty());
        }
        several => {
            spec.post_create_hooks = Some(
                several
                    .iter()
                    .map(|hook| PostCreateHookUse {
                        hook_name: hook.clone(),
                        vars: Some(vars.clone()).filter(|vars| !vars.is_empty()),
                    })
                    .collect(),
            );
        }
    }
    Ok(())
}

fn control_plane(args: &CreateArgs) -> anyhow::Result<ControlPlane> {
    let type_ = ControlPlaneType::from(args.type_);
    let mut spec: ControlPlaneSpec = serde_json::from_value(json!({
        "type": type_.as_str()
    }))?;
    // KubeFlex's CLI writes shared for k8s; a backend given for another type is written too,
    // so that a dedicated one is refused rather than ignored.
    spec.backend = match args.backend {
        Some(BackendArg::Shared) => Some(BackendDbType::Shared),
        Some(BackendArg::Dedicated) => Some(BackendDbType::Dedicated),
        None => (type_ == ControlPlaneType::K8s).then_some(BackendDbType::Shared),
    };
    spec.replicas = args.replicas;
    if type_ == ControlPlaneType::External {
        spec.bootstrap_secret_ref = Some(BootstrapSecretReference {
            name: format!("{}-bootstrap", args.name),
            namespace: SYSTEM_NAMESPACE.to_owned(),
            in_cluster_key: "kubeconfig-incluster".to_owned(),
        });
    }
    hook_fields(&mut spec, &args.hooks, &args.vars)?;
    spec.wait_for_post_create_hooks = args.wait_for_hooks.then_some(true);
    spec.kubernetes_version = args.kubernetes_version.clone();
    let cp = ControlPlane::new(&args.name, spec);
    validate_control_plane(&cp)
        .map_err(|err| anyhow::anyhow!("ControlPlane {:?}: {err}", args.name))?;
    Ok(cp)
}

pub(crate) fn run(args: CreateArgs) -> anyhow::Result<()> {
    let cp = control_plane(&args)?;
    let mut session = Session::load(&args.kubeconfig)?;
    let runtime = super::runtime()?;
    runtime.block_on(create(&mut session, cp, None, args.waiting))
}

/// Checks `cp` against the hosting cluster, creates it, and (when waiting) brings its
/// kubeconfig into the user's. Shared with `adopt`.
pub(crate) async fn create(
    session: &mut Session,
    cp: ControlPlane,
    bootstrap: Option<Secret>,
    waiting: Waiting,
) -> anyhow::Result<()> {
    let name = cp.metadata.name.clone().unwrap_or_default();
    let (hosting, client) = session.hosting_client().await?;
    let api: Api<ControlPlane> = Api::all(client.clone());
    if api
        .get_opt(&name)
        .await
        .map_err(|err| {
            super::reach::on_kflex_api(
                err,
                format!("reading ControlPlanes on the hosting cluster (context {hosting:?})"),
            )
        })?
        .is_some()
    {
        bail!("ControlPlane {name} exists already; `kflex ctx {name}` switches to it");
    }
    check_hooks(&client, &cp).await?;
    super::live::render(&client, &cp).await?;
    let settings = super::live::hosting_settings(&client).await?;
    super::exposure::check_for_create(&client, &settings, cp.spec.type_).await?;
    let written = match bootstrap {
        Some(secret) => Some(write_bootstrap_secret(&client, secret).await?),
        None => {
            check_bootstrap_secret(&client, &cp).await?;
            None
        }
    };
    let created = match api.create(&PostParams::default(), &cp).await {
        Ok(created) => created,
        Err(err) => {
            // Nothing half-done: a bootstrap Secret written for this ControlPlane goes with it.
            if let Some(Written::Created(secret)) = &written {
                let secrets: Api<Secret> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
                let _ = secrets.delete(secret, &Default::default()).await;
            }
            return Err(err).with_context(|| {
                format!("creating ControlPlane {name} (hosting context {hosting:?})")
            });
        }
    };
    if let (Some(written), Some(reference)) = (&written, &cp.spec.bootstrap_secret_ref) {
        own_bootstrap_secret(&client, &created, &reference.name, written).await;
    }
    eprintln!("ControlPlane {name} created (type {})", cp.spec.type_);
    if !waiting.wait {
        eprintln!("not waiting; `kflex ctx {name}` switches to it once it is Ready");
        return Ok(());
    }
    let ready = super::wait::until_ready(&api, &name, waiting.timeout).await?;
    let entries = super::tenant::fetch(&session.kubeconfigs, &hosting, &client, &ready).await?;
    session
        .kubeconfigs
        .update(|kubeconfigs| entries.merge_into(kubeconfigs, &hosting))?;
    eprintln!("current context: {name:?} (`kflex ctx` goes back to the hosting cluster)");
    Ok(())
}

/// Whether the bootstrap Secret was new.
enum Written {
    Created(String),
    Updated,
}

/// Makes the adopted cluster's bootstrap Secret (admin credentials of that cluster) a dependent
/// of its ControlPlane, so that deleting the ControlPlane, by `kflex delete` or any other way,
/// deletes the credentials too. A failure leaves a working control plane: it is reported, not
/// undone.
async fn own_bootstrap_secret(
    client: &kube::Client,
    created: &ControlPlane,
    secret: &str,
    written: &Written,
) {
    let name = created.metadata.name.as_deref().unwrap_or_default();
    let Some(owner) = created.owner_ref(&()) else {
        eprintln!(
            "warning: the API server returned ControlPlane {name} without a uid; Secret \
             {SYSTEM_NAMESPACE}/{secret} stays when it is deleted: delete it then"
        );
        return;
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let patch = json!({"metadata": {"ownerReferences": [owner]}});
    if let Err(err) = secrets
        .patch(secret, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        let state = match written {
            Written::Created(_) => "created",
            Written::Updated => "updated",
        };
        eprintln!(
            "warning: Secret {SYSTEM_NAMESPACE}/{secret} ({state}) could not be made a dependent \
             of ControlPlane {name} ({err}); it stays when the ControlPlane is deleted: delete it \
             then"
        );
    }
}

/// Writes an adopted cluster's bootstrap Secret in kubeflex-system.
async fn write_bootstrap_secret(client: &kube::Client, secret: Secret) -> anyhow::Result<Written> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let existed = secrets
        .get_opt(&name)
        .await
        .with_context(|| format!("reading Secret {SYSTEM_NAMESPACE}/{name}"))?
        .is_some();
    let params = PatchParams::apply(crate::cluster::CLI_FIELD_MANAGER).force();
    secrets
        .patch(&name, &params, &Patch::Apply(&secret))
        .await
        .with_context(|| format!("writing Secret {SYSTEM_NAMESPACE}/{name}"))?;
    Ok(if existed {
        Written::Updated
    } else {
        Written::Created(name)
    })
}

/// Every hook `cp` uses exists on the hosting cluster.
async fn check_hooks(client: &kube::Client, cp: &ControlPlane) -> anyhow::Result<()> {
    let hooks: Api<PostCreateHook> = Api::all(client.clone());
    let mut wanted: Vec<&str> = cp
        .spec
        .post_create_hook
        .iter()
        .map(String::as_str)
        .collect();
    wanted.extend(
        cp.spec
            .post_create_hooks
            .iter()
            .flatten()
            .map(|hook| hook.hook_name.as_str()),
    );
    for hook in wanted {
        if hooks
            .get_opt(hook)
            .await
            .with_context(|| format!("reading PostCreateHook {hook}"))?
            .is_none()
        {
            bail!(
                "PostCreateHook {hook} does not exist on the hosting cluster; create it first \
                 (`kubectl apply -f <hook file>`); nothing was created"
            );
        }
    }
    Ok(())
}

/// An external control plane needs its bootstrap Secret (`kflex adopt` creates it).
async fn check_bootstrap_secret(client: &kube::Client, cp: &ControlPlane) -> anyhow::Result<()> {
    let Some(reference) = &cp.spec.bootstrap_secret_ref else {
        return Ok(());
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &reference.namespace);
    let secret = secrets
        .get_opt(&reference.name)
        .await
        .with_context(|| format!("reading Secret {}/{}", reference.namespace, reference.name))?;
    let has_key = secret
        .as_ref()
        .and_then(|secret| secret.data.as_ref())
        .is_some_and(|data| data.contains_key(&reference.in_cluster_key));
    if !has_key {
        bail!(
            "type external needs the adopted cluster's kubeconfig in Secret {}/{}, key {:?}; \
             `kflex adopt` creates both; nothing was created",
            reference.namespace,
            reference.name,
            reference.in_cluster_key
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_split_at_the_first_equals_sign() {
        assert_eq!(parse_var("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_var(" k = v "), Ok(("k".into(), "v".into())));
        assert!(parse_var("novalue").is_err());
        assert!(parse_var("=v").is_err());
    }

    #[test]
    fn variables_without_a_hook_are_refused() {
        let mut spec: ControlPlaneSpec = serde_json::from_value(json!({"type": "k8s"})).unwrap();
        let err = hook_fields(&mut spec, &[], &[("a".into(), "b".into())]).unwrap_err();
        assert!(err.to_string().contains("-p"), "{err}");
        hook_fields(
            &mut spec,
            &["h1".into(), "h2".into()],
            &[("a".into(), "b".into())],
        )
        .unwrap();
        let uses = spec.post_create_hooks.unwrap();
        assert_eq!(uses.len(), 2);
        assert_eq!(uses[1].vars.as_ref().unwrap()["a"], "b");
    }
}
