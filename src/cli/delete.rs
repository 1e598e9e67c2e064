//! `kflex delete`: delete a ControlPlane, wait until it and its namespace are gone, and remove
//! its context from the kubeconfig.

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Namespace;
use kflex_core::api::ControlPlane;
use kflex_core::api::conditions::READY;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::Value;

use super::kubeconfig::{CONTROL_PLANE, EntryNames, Kubeconfigs, Section};
use super::progress::{Look, Progress};
use super::session::{KubeconfigArgs, Session};

const EXAMPLES: &str = "Examples:
  kflex delete cp1
  kflex delete cp1 --wait=false    # return once deletion has started";

/// Delete a control plane, wait until it is gone and remove its kubeconfig entries
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct DeleteArgs {
    #[arg(value_parser = super::control_plane_name)]
    name: String,
    #[command(flatten)]
    waiting: super::wait::Waiting,
    #[command(flatten)]
    kubeconfig: KubeconfigArgs,
}

pub(crate) fn run(args: DeleteArgs) -> anyhow::Result<()> {
    let mut session = Session::load(&args.kubeconfig)?;
    let runtime = super::runtime()?;
    let hosting = runtime.block_on(delete(&session, &args))?;
    let context = args.name.as_str();
    let removed = session.kubeconfigs.update(|kubeconfigs| {
        if !is_control_plane_context(kubeconfigs, context) {
            return Ok(false);
        }
        super::ctx::remove_context(kubeconfigs, context, Some(&hosting))?;
        Ok(true)
    })?;
    if removed {
        eprintln!("context {context:?} removed from the kubeconfig");
    }
    Ok(())
}

/// The context is the control plane's if kflex marked it so, or (written by KubeFlex, which did
/// not always mark it) if it uses the conventional `<cp>-cluster`.
fn is_control_plane_context(kubeconfigs: &Kubeconfigs, context: &str) -> bool {
    let marked = kubeconfigs
        .context_extension(context)
        .is_some_and(|data| data.get(CONTROL_PLANE).and_then(Value::as_str) == Some(context));
    let conventional = kubeconfigs
        .body(Section::Contexts, context)
        .and_then(|body| body.get("cluster"))
        .and_then(Value::as_str)
        == Some(EntryNames::of(context).cluster.as_str());
    marked || conventional
}

/// Deletes the ControlPlane and waits; returns the hosting context.
async fn delete(session: &Session, args: &DeleteArgs) -> anyhow::Result<String> {
    let name = &args.name;
    let (hosting, client) = session.hosting_client().await?;
    let api: Api<ControlPlane> = Api::all(client.clone());
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.is_not_found() => bail!(
            "there is no ControlPlane {name} on the hosting cluster (context {hosting:?}); \
             `kflex list` shows them"
        ),
        Err(err) => {
            return Err(err)
                .with_context(|| format!("deleting ControlPlane {name} (context {hosting:?})"));
        }
    }
    eprintln!("ControlPlane {name}: deletion started");
    if !args.waiting.wait {
        return Ok(hosting);
    }
    let namespaces: Api<Namespace> = Api::all(client);
    let namespace = format!("{name}-system");
    let mut progress = Progress::start(format!("ControlPlane {name} to be removed"));
    let outcome = progress
        .poll(args.waiting.timeout, || async {
            let cp = api.get_opt(name).await.ok().flatten();
            let namespace_left = namespaces
                .get_opt(&namespace)
                .await
                .ok()
                .flatten()
                .is_some();
            Ok(match (&cp, namespace_left) {
                (None, false) => Look::Done(()),
                (Some(cp), _) => Look::Waiting(cp.condition(READY).map_or_else(
                    || "the kflex controller's cleanup".to_owned(),
                    |ready| format!("cleanup ({}: {})", ready.reason, ready.message),
                )),
                (None, true) => Look::Waiting(format!("namespace {namespace} to terminate")),
            })
        })
        .await?;
    match outcome {
        Ok(()) => {
            progress.finish(&format!(
                "ControlPlane {name} and namespace {namespace} are gone"
            ));
            Ok(hosting)
        }
        Err(status) => {
            progress.finish(&format!("ControlPlane {name} is not gone yet"));
            bail!(
                "timed out after {} waiting for ControlPlane {name} to be removed; last seen: \
                 waiting for {status}",
                super::progress::elapsed(args.waiting.timeout)
            )
        }
    }
}
