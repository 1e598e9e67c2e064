//! `kflex controller`: the process — logging, the API client, leader election, the HTTP
//! endpoints, and the kube-runtime Controller wired to the watches, until SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use futures::{FutureExt as _, StreamExt as _, TryStreamExt as _};
use kflex_core::api::{ControlPlane, PostCreateHook};
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::runtime::Controller;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::controller::Error as ControllerError;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{PredicateConfig, WatchStreamExt as _, watcher};

use super::context::{Context, Options};
use super::metrics::Metrics;
use super::readiness::KubeconfigProbe;
use super::reconcile::{error_policy, reconcile};
use super::server::{Endpoints, Health, serve};
use super::watches::{Watches, control_plane_relevant, owner_of, users_of};
use crate::bootstrap::duration;
use crate::cluster::resources::Resources;

/// Log formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Applies what `kflex render` prints for every ControlPlane, prunes what it no longer
/// prints, and reports status. Runs in the hosting cluster (see `kflex render --system`).
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Take part in leader election (a Lease in the system namespace); only the leader works.
    #[arg(long)]
    leader_elect: bool,
    /// Where `/metrics` is served.
    #[arg(long, default_value = ":8080")]
    metrics_bind_address: String,
    /// Where `/healthz` and `/readyz` are served.
    #[arg(long, default_value = ":8081")]
    health_probe_bind_address: String,
    /// ControlPlanes reconciled at once.
    #[arg(long, default_value_t = 4)]
    concurrency: u16,
    /// How often an unchanged, Ready control plane is looked at again.
    #[arg(long, value_parser = duration::parse, default_value = "10m")]
    resync: Duration,
    /// How soon a control plane that is not Ready yet is looked at again (its readiness is
    /// polled: no watch tells when its API starts answering).
    #[arg(long, value_parser = duration::parse, default_value = "15s")]
    not_ready_requeue: Duration,
    /// How long deletion waits for cleanup (the k8s database drop) before giving up on it.
    #[arg(long, value_parser = duration::parse, default_value = "10m")]
    cleanup_timeout: Duration,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// This replica's name in leader election (the pod's name).
    #[arg(long, env = "POD_NAME", default_value = "kflex-controller")]
    identity: String,
}

/// `:8080` → `0.0.0.0:8080`.
fn socket(address: &str) -> anyhow::Result<SocketAddr> {
    let full = if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.to_owned()
    };
    full.parse()
        .with_context(|| format!("{address:?} is not an address like :8080"))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests) is harmless.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub fn run(args: ControllerArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    // One thread: reconciles wait on the API far more than they compute, and it keeps memory low.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve_until_stopped(args))
}

/// kflex's objects live in one namespace, which the rendered manifests name; a controller
/// deployed elsewhere would look for its configuration in the wrong place.
fn check_namespace() -> anyhow::Result<&'static str> {
    let expected = kflex_core::settings::SYSTEM_NAMESPACE;
    match std::env::var("POD_NAMESPACE") {
        Ok(namespace) if !namespace.is_empty() && namespace != expected => anyhow::bail!(
            "the controller runs in namespace {namespace:?} ($POD_NAMESPACE), but kflex's system \
             namespace is {expected:?}: install it with `kflex render --system`"
        ),
        _ => Ok(expected),
    }
}

async fn serve_until_stopped(args: ControllerArgs) -> anyhow::Result<()> {
    let system_namespace = check_namespace()?;
    // As kube's Client::try_default, with kubeconfig parse errors that never quote the file.
    let client = crate::bootstrap::kubeconfig::infer_client()
        .await
        .context("connecting to the Kubernetes API (in-cluster configuration or $KUBECONFIG)")?;
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let _metrics_server = serve(
        socket(&args.metrics_bind_address)?,
        Endpoints::Metrics,
        health.clone(),
        metrics.clone(),
    )
    .await?;
    let _probe_server = serve(
        socket(&args.health_probe_bind_address)?,
        Endpoints::Probes,
        health.clone(),
        metrics.clone(),
    )
    .await?;

    // Ready once serving: followers too, or a rolling update (new pod Ready before the old,
    // leading one goes) would never finish.
    health.ready.store(true, Ordering::SeqCst);

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let stop = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    .boxed()
    .shared();

    let lease = if args.leader_elect {
        let manager =
            kube_lease_manager::LeaseManagerBuilder::new(client.clone(), "kflex-controller")
                .with_namespace(system_namespace)
                .with_identity(&args.identity)
                .build()
                .await
                .context("setting up leader election")?;
        let (mut leading, task) = manager.watch().await;
        tracing::info!(identity = %args.identity, "waiting to become the leader");
        tokio::select! {
            _ = async { while !*leading.borrow_and_update() { if leading.changed().await.is_err() { break; } } } => {}
            () = stop.clone() => return Ok(()),
        }
        tracing::info!("leading");
        Some((leading, task))
    } else {
        None
    };

    let (lost_leadership, leadership_task) = match lease {
        Some((mut leading, task)) => (
            futures::future::Either::Left(async move {
                while *leading.borrow_and_update() {
                    if leading.changed().await.is_err() {
                        break;
                    }
                }
            }),
            Some(task),
        ),
        None => (
            futures::future::Either::Right(futures::future::pending::<()>()),
            None,
        ),
    };

    let stopping = health.clone();
    let shutdown = async move {
        tokio::select! {
            () = stop => tracing::info!("stopping"),
            () = lost_leadership => tracing::warn!("lost leadership; stopping"),
        }
        stopping.ready.store(false, Ordering::SeqCst);
    };
    let running = Running {
        system_namespace: system_namespace.to_owned(),
        concurrency: args.concurrency,
        options: Options {
            resync: args.resync,
            not_ready_requeue: args.not_ready_requeue,
            cleanup_timeout: args.cleanup_timeout,
        },
        identity: args.identity.clone(),
    };
    run_controller(client, running, metrics, shutdown).await?;
    if let Some(task) = leadership_task {
        task.abort();
    }
    Ok(())
}

/// How a controller runs, apart from its API client.
#[derive(Clone, Debug)]
pub struct Running {
    pub system_namespace: String,
    pub concurrency: u16,
    pub options: Options,
    /// The name Events are reported under.
    pub identity: String,
}

/// Runs the controller against `client` until `shutdown` completes (the process's main loop,
/// and the end-to-end suite's in-process controller).
pub async fn run_controller(
    client: kube::Client,
    running: Running,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    // Routes exist only on OpenShift: watch them when the configuration says so; TLSRoutes only
    // where Gateway API is installed (both decided once; later changes need a restart of the
    // controller, which meanwhile applies and checks those kinds without a watch).
    let config: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), &running.system_namespace);
    let data = config
        .get_opt(super::config::CONFIG_MAP)
        .await
        .context("reading the configuration ConfigMap")?
        .map(|cm| cm.data.unwrap_or_default());
    let openshift = match super::config::settings(&running.system_namespace, data.as_ref()) {
        Ok(settings) => settings.is_open_shift,
        Err(err) => {
            // Every ControlPlane then reports it (Synced=False) until the ConfigMap is right.
            tracing::warn!(error = %format!("{:#}", anyhow::Error::from(err)), "no valid configuration: nothing is applied until there is; Routes are not watched until a restart");
            false
        }
    };
    let mut optional = Vec::new();
    if openshift {
        optional.push(super::watches::ROUTE);
    }
    if super::exposure::tls_routes_served(&client).await {
        optional.push(super::watches::TLS_ROUTE);
    }
    let watches = Watches::new(&client, &running.system_namespace, &optional);
    let ctx = Arc::new(Context {
        resources: Resources::new(client.clone()),
        system_namespace: running.system_namespace.clone(),
        config: watches.config.clone(),
        hooks: watches.hooks.clone(),
        caches: watches.caches.clone(),
        renderers: Default::default(),
        records: Default::default(),
        failures: Default::default(),
        reported: Default::default(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "kflex".into(),
                instance: Some(running.identity.clone()),
            },
        ),
        metrics,
        probe: Arc::new(KubeconfigProbe {
            timeout: Duration::from_secs(5),
        }),
        options: running.options,
        clock: Arc::new(|| time::OffsetDateTime::now_utc().unix_timestamp()),
        client: client.clone(),
    });

    let metrics = ctx.metrics.clone();
    // A ControlPlane wakes its reconcile when something it depends on changed, not on its own
    // status writes (see `control_plane_relevant`).
    let (control_planes, writer) = reflector::store();
    let woken = metrics.clone();
    let trigger = reflector::reflector(
        writer,
        watcher(
            Api::<ControlPlane>::all(client.clone()),
            watcher::Config::default(),
        )
        // A reconcile reads the ControlPlane afresh; the cache serves names, specs and the
        // predicate, so the rest (a kilobyte or more each) is not kept.
        .modify(|cp| {
            cp.metadata.managed_fields = None;
            cp.status = None;
        }),
    )
    .default_backoff()
    .applied_objects()
    .predicate_filter(control_plane_relevant, PredicateConfig::default())
    .inspect_ok(move |cp: &ControlPlane| woken.woken(cp.metadata.name.as_deref()));
    let controller = Controller::for_stream(trigger, control_planes.clone())
        // The debounce folds the burst of member events that follows an apply into one reconcile;
        // kube-runtime holds the events that arrive while a pass runs and runs one pass after it.
        .with_config(
            ControllerConfig::default()
                .concurrency(running.concurrency)
                .debounce(Duration::from_millis(500)),
        );
    let all = control_planes.clone();
    let woken = metrics.clone();
    let every = move || {
        let all: Vec<_> = all
            .state()
            .iter()
            .map(|cp| ObjectRef::from_obj(cp.as_ref()))
            .collect();
        woken.woken(all.iter().map(|r| r.name.as_str()));
        all
    };
    let Watches {
        config_stream,
        hook_stream,
        member_streams,
        ..
    } = watches;
    let woken = metrics.clone();
    let users = move |hook: PostCreateHook| {
        let users = users_of(&control_planes, &hook);
        woken.woken(users.iter().map(|r| r.name.as_str()));
        users
    };
    let mut controller = controller
        .watches_stream(config_stream, move |_| every())
        .watches_stream(hook_stream, users);
    for (resource, stream) in member_streams {
        let woken = metrics.clone();
        let owner = move |meta: PartialObjectMeta<DynamicObject>| {
            let owner = owner_of(&meta);
            woken.woken(owner.iter().map(|r| r.name.as_str()));
            owner
        };
        controller = controller.watches_stream_with(stream, owner, resource);
    }
    tracing::info!(namespace = %running.system_namespace, concurrency = running.concurrency, "reconciling ControlPlanes");
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(err) = &result {
                // A request for a ControlPlane gone meanwhile is dropped, not reconciled.
                if let ControllerError::ObjectNotFound(gone) = err {
                    metrics.dequeued(&gone.name);
                }
                tracing::debug!(error = %err, "controller event");
            }
            futures::future::ready(())
        })
        .await;
    Ok(())
}
