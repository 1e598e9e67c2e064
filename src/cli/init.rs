//! `kflex init`: install kflex on the hosting cluster. It says which exposures the cluster can
//! serve (Ingress, OpenShift Route, Gateway API, load balancer) and refuses, before installing
//! anything, an exposure it cannot; then the system manifests (what `kflex render --system`
//! prints, with the same settings flags, so `--exposure` lands in kubeflex-config) are applied
//! with server-side apply, what the system manifests render only under another `postgres.mode`
//! is removed (the shared PostgreSQL, once the datastore is an existing server), the context is
//! recorded as the hosting cluster's, and PostgreSQL and the controller are waited for. With
//! `--create-kind`, a kind cluster with ingress-nginx in TLS-passthrough mode is created first.

use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kflex_core::manifest::{Manifest, ObjectKey};
use kflex_core::render::{Renderer, TemplateSet};
use kflex_core::settings::{Exposure, PostgresMode, PullPolicy, SYSTEM_NAMESPACE, Settings};

use super::kind;
use super::progress::{Look, Progress};
use super::session::{KubeconfigArgs, Session};
use super::settings::SettingsArgs;
use crate::cluster::api_for;
use crate::cluster::apply::{Replacement, apply_in_order};
use crate::cluster::prune;
use crate::cluster::resources::Resources;
use crate::controller::readiness::ready;

const EXAMPLES: &str = "Examples:
  kflex init                                  # on the current context's cluster
  kflex init --create-kind                    # a kind cluster named kubeflex first
  kflex init --create-kind --load-image       # ... with the kflex image built on this machine
  kflex init --domain kflex.example.com --external-port 443
  kflex init --exposure gateway --set gateway.create=true --set gateway.className=eg
  kflex init --openshift";

/// Install kflex on the hosting cluster (the current context) and record it
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct InitArgs {
    /// Name of the kind cluster --create-kind creates (its context is kind-<name>, its node
    /// container <name>-control-plane)
    #[arg(default_value = kind::DEFAULT_CLUSTER)]
    cluster_name: String,
    /// Create a kind cluster with ingress-nginx (TLS passthrough) first; needs `kind` on PATH
    #[arg(short = 'c', long)]
    create_kind: bool,
    /// With --create-kind: load the kflex image (the `images.kflex` setting, by default
    /// ghcr.io/kubestellar/kflex:<kflex version>) from this machine's container engine into the
    /// kind cluster (`kind load docker-image`), for an image built from the repository rather
    /// than pulled
    #[arg(long, requires = "create_kind")]
    load_image: bool,
    #[command(flatten)]
    waiting: super::wait::Waiting,
    #[command(flatten)]
    kubeconfig: KubeconfigArgs,
    #[command(flatten)]
    settings: SettingsArgs,
}

pub(crate) fn run(args: InitArgs) -> anyhow::Result<()> {
    let settings = args
        .settings
        .resolve(&mut crate::read::Reader::default(), super::environment())?;
    let renderer = Renderer::new(settings.clone(), &TemplateSet::embedded())
        .context("compiling the templates")?;
    let mut system = renderer.render_system()?.manifests;
    let sources = super::kubeconfig::Sources::from_env(args.kubeconfig.kubeconfig.as_deref())?;
    if args.create_kind {
        if settings.is_open_shift {
            bail!("--create-kind makes a kind cluster, which is not OpenShift; drop --openshift");
        }
        if settings.exposure() == Exposure::Gateway {
            bail!(
                "--create-kind installs ingress-nginx, not a Gateway API implementation; use the \
                 default exposure with it, or install Gateway API on a cluster of your own"
            );
        }
        let kind_cluster = kind::Cluster {
            name: args.cluster_name.clone(),
            external_port: settings.external_port,
        };
        if settings.host_container != kind_cluster.node_container() {
            eprintln!(
                "note: the kind node container is {:?}; certificates name {:?} (--host-container)",
                kind_cluster.node_container(),
                settings.host_container
            );
        }
        let image = if args.load_image {
            Some(loadable_image(&settings)?)
        } else {
            None
        };
        let kubeconfig_file = sources
            .paths
            .first()
            .context("no kubeconfig file for kind to write to")?;
        kind::create(&kind_cluster, kubeconfig_file)?;
        if let Some(image) = image {
            kind::load_image(&kind_cluster.name, &image)?;
        }
    }
    let mut session = Session::load(&args.kubeconfig)?;
    let context = match (args.create_kind, session.kubeconfigs.current_context()) {
        (true, _) => kind::context(&args.cluster_name),
        (false, Some(current)) => current.to_owned(),
        (false, None) => bail!(
            "the kubeconfig ({}) has no current context; switch to the hosting cluster's, or use \
             --create-kind",
            session.kubeconfigs.describe_paths()
        ),
    };
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let client = session.client(&context).await?;
        eprintln!("installing kflex on the cluster of context {context:?}");
        if args.create_kind {
            let ingress = kind::ingress_nginx()?;
            apply_all(&client, &ingress).await?;
            wait_ready::<Deployment>(&client, &ingress, args.waiting.timeout).await?;
        }
        let support = super::exposure::detect(&client).await?;
        eprintln!("exposures this hosting cluster can serve:");
        for line in super::exposure::describe(&support, &settings) {
            eprintln!("{line}");
        }
        if let Some(refusal) = super::exposure::init_refusal(&support, &settings) {
            bail!("{refusal}; nothing was installed");
        }
        eprintln!(
            "control planes are exposed with: {} (setting exposure; --exposure chooses)",
            settings.exposure()
        );
        let gateway = &settings.gateway;
        if settings.exposure() == Exposure::Gateway
            && !gateway.create
            && !super::exposure::gateway_exists(&client, &gateway.namespace, &gateway.name).await?
        {
            eprintln!(
                "warning: Gateway {}/{} does not exist yet; `kflex create` refuses control \
                 planes until it does (or set gateway.create and gateway.className)",
                gateway.namespace, gateway.name
            );
        }
        apply_all(&client, &system).await?;
        remove_other_modes(&client, &settings, &system).await?;
        session.kubeconfigs.update(|kubeconfigs| {
            kubeconfigs.set_hosting_context(&context)?;
            kubeconfigs.set_current_context(&context)
        })?;
        eprintln!("hosting cluster recorded: context {context:?}");
        if args.waiting.wait {
            system.retain(|manifest| manifest.namespace() == Some(SYSTEM_NAMESPACE));
            wait_ready::<StatefulSet>(&client, &system, args.waiting.timeout).await?;
            wait_ready::<Deployment>(&client, &system, args.waiting.timeout).await?;
        }
        eprintln!("kflex is ready: `kflex create cp1` creates a control plane");
        anyhow::Ok(())
    })?;
    Ok(())
}

/// The kflex image `--load-image` loads: the reference the pods run, checked before any cluster
/// is created. kind loads a tag (not a digest), and the kubelet uses a loaded image only when it
/// does not pull it anyway.
fn loadable_image(settings: &Settings) -> anyhow::Result<String> {
    let image = &settings.images.kflex;
    if !image.digest.is_empty() {
        bail!(
            "--load-image loads a tag into kind, but the images.kflex.digest setting pins the \
             pods to {}; unset it",
            image.digest
        );
    }
    if settings.image_pull_policy == PullPolicy::Always {
        bail!(
            "--load-image with imagePullPolicy Always: the kubelet would pull the image instead \
             of using the loaded one; use IfNotPresent"
        );
    }
    Ok(image.reference(&settings.image_registry, ""))
}

/// Applies `manifests` in order, writing only what is not as rendered (see
/// `cluster::apply::apply_in_order`), and says what changed.
async fn apply_all(client: &kube::Client, manifests: &[Manifest]) -> anyhow::Result<()> {
    let resources = Resources::new(client.clone());
    let applied = apply_in_order(client, &resources, manifests).await?;
    for (key, replacement) in &applied.replaced {
        let why = match replacement {
            Replacement::Job => "its template changed",
            Replacement::Binding => "its roleRef changed",
        };
        eprintln!("replaced {key}: {why}, which the API cannot change in place");
    }
    eprintln!(
        "applied {} objects ({} already as rendered)",
        applied.written.len(),
        applied.unchanged.len()
    );
    Ok(())
}

/// The system objects that another `postgres.mode` renders and `settings` does not: the shared
/// PostgreSQL kflex runs, once the datastore is an existing server (nothing the other way).
pub(crate) fn other_modes_only(
    settings: &Settings,
    current: &[Manifest],
) -> anyhow::Result<Vec<Manifest>> {
    let current: std::collections::HashSet<ObjectKey> = current.iter().map(Manifest::key).collect();
    let mut others = Vec::new();
    for mode in [PostgresMode::InCluster, PostgresMode::External] {
        if mode == settings.postgres.mode {
            continue;
        }
        let mut other = settings.clone();
        other.postgres.mode = mode;
        if mode == PostgresMode::External && other.postgres.external.secret_name.is_empty() {
            // Any name: only which objects the mode renders matters here.
            other.postgres.external.secret_name = "unused".to_owned();
        }
        let renderer =
            Renderer::new(other, &TemplateSet::embedded()).context("compiling the templates")?;
        others.extend(
            renderer
                .render_system()?
                .manifests
                .into_iter()
                .filter(|manifest| !current.contains(&manifest.key())),
        );
    }
    Ok(others)
}

/// Deletes what [`other_modes_only`] names, where it exists and kflex manages it (label
/// `app.kubernetes.io/managed-by: kflex`). The in-cluster PostgreSQL's data volume claim and its
/// password and certificate Secrets are never rendered, so they stay: going back to the
/// in-cluster mode finds the data again.
async fn remove_other_modes(
    client: &kube::Client,
    settings: &Settings,
    current: &[Manifest],
) -> anyhow::Result<()> {
    let resources = Resources::new(client.clone());
    let mut removed = 0;
    for manifest in other_modes_only(settings, current)?.iter().rev() {
        let key = manifest.key();
        let resource = resources
            .resolve(manifest.api_version(), manifest.kind())
            .await
            .with_context(|| format!("removing {key}"))?;
        let api = api_for(client, &resource, manifest.namespace());
        let Some(live) = api
            .get_opt(manifest.name())
            .await
            .with_context(|| format!("reading {key}"))?
        else {
            continue;
        };
        let managed = live
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get("app.kubernetes.io/managed-by"))
            .is_some_and(|by| by == "kflex");
        if !managed {
            continue;
        }
        prune::delete(client, &resource, &key).await?;
        removed += 1;
    }
    if removed > 0 {
        eprintln!(
            "removed {removed} objects that postgres.mode {} does not use",
            match settings.postgres.mode {
                PostgresMode::InCluster => "inCluster",
                PostgresMode::External => "external",
            }
        );
    }
    Ok(())
}

/// Waits until every object of `kind` among `manifests` is ready.
/// Waits until each of `manifests` of type `K` is ready.
async fn wait_ready<K: k8s_openapi::Resource>(
    client: &kube::Client,
    manifests: &[Manifest],
    timeout: Duration,
) -> anyhow::Result<()> {
    for manifest in manifests.iter().filter(|manifest| manifest.is::<K>()) {
        wait_one(client, manifest, timeout).await?;
    }
    Ok(())
}

async fn wait_one(
    client: &kube::Client,
    manifest: &Manifest,
    timeout: Duration,
) -> anyhow::Result<()> {
    let resources = Resources::new(client.clone());
    let resource = resources
        .resolve(manifest.api_version(), manifest.kind())
        .await?;
    let api = api_for(client, &resource, manifest.namespace());
    let what = match manifest.namespace() {
        Some(namespace) => format!("{} {namespace}/{}", manifest.kind(), manifest.name()),
        None => format!("{} {}", manifest.kind(), manifest.name()),
    };
    let mut progress = Progress::start(format!("{what} to be ready"));
    let outcome = progress
        .poll(timeout, || async {
            let live = api
                .get_opt(manifest.name())
                .await
                .with_context(|| format!("reading {what}"))?;
            Ok(match live {
                Some(live) if ready(&resource.group, &resource.kind, &live.data) => Look::Done(()),
                Some(live) => Look::Waiting(describe(&live.data)),
                None => Look::Waiting("it does not exist".to_owned()),
            })
        })
        .await?;
    match outcome {
        Ok(()) => {
            progress.finish(&format!("{what} is ready"));
            Ok(())
        }
        Err(status) => {
            progress.finish(&format!("{what} is not ready"));
            bail!(
                "timed out after {} waiting for {what} to be ready ({status}); `kubectl describe` \
                 it to see why",
                super::progress::elapsed(timeout)
            )
        }
    }
}

/// "1/1 replicas ready" or what a CRD's conditions say.
fn describe(data: &serde_json::Value) -> String {
    let ready = data
        .pointer("/status/readyReplicas")
        .and_then(serde_json::Value::as_i64);
    let wanted = data
        .pointer("/spec/replicas")
        .and_then(serde_json::Value::as_i64);
    match wanted {
        Some(wanted) => format!("{}/{wanted} replicas ready", ready.unwrap_or(0)),
        None => "not yet".to_owned(),
    }
}
