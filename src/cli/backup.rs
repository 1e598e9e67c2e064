//! `kflex backup create | list` and `kflex restore`: a k8s control plane's backups, from the
//! command line.
//!
//! The storage is in the hosting cluster (a volume claim, or an S3 bucket whose credentials are
//! a Secret there), so each command that reads or writes it runs the kflex image there in a Job
//! in `kubeflex-system` — `create` one made from the control plane's backup CronJob (as `kubectl
//! create job --from=cronjob/…` does), `list` one with the storage entry mounted and nothing
//! else — waits for it, and reads its result, one line of JSON, from the pod's log. `restore`
//! checks the backup is there and creates the ControlPlane with `spec.restoreFrom`, then waits
//! for it like `kflex create`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kflex_core::api::{
    BackendDbType, ControlPlane, ControlPlaneSpec, ControlPlaneType, RestoreFrom, validate_backup,
    validate_control_plane,
};
use kflex_core::render::backup::{self as names, StoreContext};
use kflex_core::render::metadata::CONTROL_PLANE_LABEL;
use kflex_core::settings::{SYSTEM_NAMESPACE, Settings};
use kube::api::{DeleteParams, ListParams, LogParams, PostParams};
use kube::{Api, Resource as _};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::progress::{Look, Progress};
use super::session::{KubeconfigArgs, Session};
use super::wait::Waiting;
use crate::bootstrap::backup::Listed;
use crate::output::print_line;

const BACKUP_EXAMPLES: &str = "Examples:
  kflex backup create cp1            # back up cp1's database now; prints the backup's name
  kflex backup list cp1              # its backups, newest last
  kflex backup list cp1 -o json | jq -r '.backups[-1].name'
  kflex backup list old-cp --storage offsite   # a control plane that is gone";

/// Back up a k8s control plane's database now, or list its backups
#[derive(Debug, clap::Args)]
#[command(after_help = BACKUP_EXAMPLES)]
pub(crate) struct BackupArgs {
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BackupCommand {
    /// Take a backup now (a Job from the control plane's backup CronJob), wait for it, and
    /// print its name
    Create(CreateArgs),
    /// List a control plane's backups in its storage: name, time, size
    List(ListArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The control plane (it needs spec.backup: its CronJob is what runs)
    #[arg(value_parser = super::control_plane_name)]
    name: String,
    /// Output: the backup's name, or JSON with its time, size and rows
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    /// How long to wait for the backup
    #[arg(long, value_parser = crate::bootstrap::duration::parse, default_value = "30m")]
    timeout: Duration,
    #[command(flatten)]
    kubeconfig: KubeconfigArgs,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// The control plane (it need not exist any more)
    #[arg(value_parser = super::control_plane_name)]
    name: String,
    /// The storage entry (setting backup.storage) [default: the control plane's
    /// spec.backup.storage, else the first entry]
    #[arg(long, value_name = "NAME")]
    storage: Option<String>,
    /// Output: a table, or JSON for scripts
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    /// How long to wait for the listing Job
    #[arg(long, value_parser = crate::bootstrap::duration::parse, default_value = "5m")]
    timeout: Duration,
    #[command(flatten)]
    kubeconfig: KubeconfigArgs,
}

const RESTORE_EXAMPLES: &str = "Examples:
  kflex restore cp1 --backup 20261203-021700-k3x9qa        # cp1 again, after it was lost
  kflex restore prod --backup 20261203-021700-k3x9qa --as staging
                                  # a clone; needs backup.allowedRestores: prod:staging
  kflex restore cp1 --backup 20261203-021700-k3x9qa --storage offsite --wait=false";

/// Create a k8s control plane from a backup: the same one after a loss, or a clone with --as
#[derive(Debug, clap::Args)]
#[command(after_help = RESTORE_EXAMPLES)]
pub(crate) struct RestoreArgs {
    /// The control plane the backup was taken of
    #[arg(value_parser = super::control_plane_name)]
    name: String,
    /// The backup (`kflex backup list NAME` shows them)
    #[arg(long, value_name = "BACKUP")]
    backup: String,
    /// Create the control plane under this name instead (a clone; an administrator allows it
    /// with the setting backup.allowedRestores)
    #[arg(long = "as", value_name = "NEW", value_parser = super::control_plane_name)]
    as_: Option<String>,
    /// The storage entry holding the backup [default: the source's spec.backup.storage, else
    /// the first entry]
    #[arg(long, value_name = "NAME")]
    storage: Option<String>,
    /// Where the new control plane keeps its data, when the source is gone (otherwise its own)
    #[arg(short = 'b', long = "backend", value_enum)]
    backend: Option<BackendArg>,
    /// Output: JSON naming the control plane and the backup, once it is created (and Ready)
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
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

pub(crate) fn run(args: BackupArgs) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    match args.command {
        BackupCommand::Create(args) => runtime.block_on(create(args)),
        BackupCommand::List(args) => runtime.block_on(list(args)),
    }
}

/// What `kflex bootstrap backup create` prints.
#[derive(Deserialize, Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Created {
    #[serde(flatten)]
    backup: Listed,
    control_plane: String,
    store: String,
    #[serde(default)]
    removed: Vec<String>,
}

/// What `kflex bootstrap backup list` prints.
#[derive(Deserialize, Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Listing {
    control_plane: String,
    store: String,
    backups: Vec<Listed>,
}

fn random_suffix(length: usize) -> anyhow::Result<String> {
    Ok(crate::bootstrap::random::password(length)?.to_ascii_lowercase())
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let session = Session::load(&args.kubeconfig)?;
    let (hosting, client) = session.hosting_client().await?;
    let name = &args.name;
    let cron_job = names::cron_job_name(name);
    let cron_jobs: Api<CronJob> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let Some(cron) = cron_jobs.get_opt(&cron_job).await.with_context(|| {
        format!("reading CronJob {SYSTEM_NAMESPACE}/{cron_job} (hosting context {hosting:?})")
    })?
    else {
        let control_planes: Api<ControlPlane> = Api::all(client.clone());
        let why = match control_planes.get_opt(name).await? {
            None => format!("ControlPlane {name} does not exist"),
            Some(cp) if cp.spec.backup.is_none() => format!(
                "ControlPlane {name} has no spec.backup; add one (schedule, and optionally \
                 retention and storage) so that kflex renders its backup CronJob"
            ),
            Some(_) => format!(
                "its backup CronJob {SYSTEM_NAMESPACE}/{cron_job} is not there yet (the \
                 controller applies it; `kflex list` shows whether {name} is Synced)"
            ),
        };
        bail!("cannot back up {name}: {why}");
    };
    let template = cron
        .spec
        .as_ref()
        .map(|spec| spec.job_template.clone())
        .context("the CronJob has no spec")?;
    let job_name = format!("{cron_job}-m{}", random_suffix(9)?);
    let mut metadata = template.metadata.clone().unwrap_or_default();
    metadata.name = Some(job_name.clone());
    metadata.namespace = Some(SYSTEM_NAMESPACE.to_owned());
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(CONTROL_PLANE_LABEL.to_owned(), name.clone());
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            "cronjob.kubernetes.io/instantiate".to_owned(),
            "manual".to_owned(),
        );
    // Garbage-collected with its CronJob, as `kubectl create job --from` makes it.
    metadata.owner_references = cron.controller_owner_ref(&()).map(|owner| vec![owner]);
    let mut spec = template.spec.unwrap_or_default();
    spec.ttl_seconds_after_finished = Some(86_400);
    let job = Job {
        metadata,
        spec: Some(spec),
        ..Job::default()
    };
    let log = run_job(
        &client,
        job,
        "backup",
        &format!("a backup of {name}"),
        args.timeout,
    )
    .await?;
    let created: Created = result(&log, &job_name)?;
    match args.output {
        Format::Text => {
            eprintln!(
                "backup {} of {name}: {} rows, {} in storage {}{}",
                created.backup.name,
                created.backup.rows,
                size(created.backup.bytes),
                created.store,
                if created.removed.is_empty() {
                    String::new()
                } else {
                    format!("; retention removed {}", created.removed.join(", "))
                }
            );
            print_line(&created.backup.name)
        }
        Format::Json => print_line(&serde_json::to_string_pretty(&created)?),
    }
}

/// The storage entry a command for `control_plane` uses: `wanted`, else (when the control plane
/// exists) its `spec.backup.storage`, else the first entry.
async fn storage_of(
    client: &kube::Client,
    settings: &Settings,
    control_plane: &str,
    wanted: Option<&str>,
) -> anyhow::Result<StoreContext> {
    let own = match wanted {
        Some(_) => None,
        None => Api::<ControlPlane>::all(client.clone())
            .get_opt(control_plane)
            .await
            .with_context(|| format!("reading ControlPlane {control_plane}"))?
            .and_then(|cp| cp.spec.backup.and_then(|backup| backup.storage)),
    };
    let name = wanted.map(str::to_owned).or(own);
    let store = settings.backup.store(name.as_deref()).with_context(|| {
        let known: Vec<&str> = settings
            .backup
            .storage
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        match &name {
            Some(name) => format!(
                "the hosting cluster's setting backup.storage has no entry {name:?} (it has: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
            None => "the hosting cluster's setting backup.storage has no entry".to_owned(),
        }
    })?;
    Ok(StoreContext::new(store))
}

/// A Job that lists `control_plane`'s backups in `store`: the kflex image, the storage mounted
/// read-only, no API access.
fn list_job(settings: &Settings, control_plane: &str, store: &StoreContext, name: &str) -> Job {
    let image = settings
        .images
        .kflex
        .reference(&settings.image_registry, "");
    let mut args = vec![
        "bootstrap".to_owned(),
        "backup".to_owned(),
        "list".to_owned(),
        format!("--control-plane={control_plane}"),
    ];
    args.extend(store.args.iter().cloned());
    let volume = match (&store.claim_name, &store.secret_name) {
        (Some(claim), _) => json!({"name": "backup-storage",
            "persistentVolumeClaim": {"claimName": claim, "readOnly": true}}),
        (None, secret) => json!({"name": "backup-storage",
            "secret": {"secretName": secret.clone().unwrap_or_default()}}),
    };
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": SYSTEM_NAMESPACE,
            "labels": {
                "app.kubernetes.io/name": "kflex",
                "app.kubernetes.io/component": "backup-list",
                CONTROL_PLANE_LABEL: control_plane,
            },
        },
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": {
                    "app.kubernetes.io/name": "kflex",
                    "app.kubernetes.io/component": "backup-list",
                }},
                "spec": {
                    "restartPolicy": "Never",
                    "enableServiceLinks": false,
                    "automountServiceAccountToken": false,
                    "securityContext": {"runAsNonRoot": true,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "list",
                        "image": image,
                        "imagePullPolicy": serde_json::to_value(settings.image_pull_policy)
                            .unwrap_or_default(),
                        "args": args,
                        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                                      "limits": {"memory": "256Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false,
                                            "capabilities": {"drop": ["ALL"]},
                                            "readOnlyRootFilesystem": true},
                        "volumeMounts": [{"name": "backup-storage", "mountPath": store.mount_path,
                                          "readOnly": true}],
                    }],
                    "volumes": [volume],
                },
            },
        },
    }))
    .unwrap_or_default()
}

/// `control_plane`'s backups in `store`, read by a Job in the hosting cluster.
async fn listing(
    client: &kube::Client,
    settings: &Settings,
    control_plane: &str,
    store: &StoreContext,
    timeout: Duration,
) -> anyhow::Result<Listing> {
    let job_name = format!("kflex-backup-list-{}", random_suffix(10)?);
    let job = list_job(settings, control_plane, store, &job_name);
    let log = run_job(
        client,
        job,
        "list",
        &format!("the backups of {control_plane} in storage {}", store.name),
        timeout,
    )
    .await?;
    // Its work is done and its answer read: nothing to keep.
    let jobs: Api<Job> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let _ = jobs.delete(&job_name, &DeleteParams::background()).await;
    result(&log, &job_name)
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let session = Session::load(&args.kubeconfig)?;
    let (_, client) = session.hosting_client().await?;
    let settings = super::live::hosting_settings(&client).await?;
    let store = storage_of(&client, &settings, &args.name, args.storage.as_deref()).await?;
    let listing = listing(&client, &settings, &args.name, &store, args.timeout).await?;
    match args.output {
        Format::Json => print_line(&serde_json::to_string_pretty(&listing)?),
        Format::Text if listing.backups.is_empty() => {
            eprintln!("no backups of {} in storage {}", args.name, listing.store);
            Ok(())
        }
        Format::Text => print_line(table(&listing.backups).trim_end()),
    }
}

/// `NAME  TIME  SIZE  ROWS`, aligned.
fn table(backups: &[Listed]) -> String {
    let rows: Vec<[String; 4]> = backups
        .iter()
        .map(|b| {
            [
                b.name.clone(),
                b.time.clone(),
                size(b.bytes),
                b.rows.to_string(),
            ]
        })
        .collect();
    let header = ["NAME", "TIME", "SIZE", "ROWS"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(line.join("   ").trim_end());
        text.push('\n');
    }
    text
}

/// `512B`, `1.5KiB`, `12.0MiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// The result a bootstrap program printed: the last line of its log that parses as one.
fn result<T: serde::de::DeserializeOwned>(log: &str, job: &str) -> anyhow::Result<T> {
    log.lines()
        .rev()
        .find_map(|line| serde_json::from_str(line.trim()).ok())
        .with_context(|| {
            format!("Job {SYSTEM_NAMESPACE}/{job} succeeded but its log holds no result")
        })
}

/// Creates `job`, waits until it succeeds or fails (showing progress), and returns the log of
/// its container `container`. A failure's message is the program's own last line.
async fn run_job(
    client: &kube::Client,
    job: Job,
    container: &str,
    what: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let name = job.metadata.name.clone().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    jobs.create(&PostParams::default(), &job)
        .await
        .with_context(|| format!("creating Job {SYSTEM_NAMESPACE}/{name}"))?;
    let mut progress = Progress::start(what.to_owned());
    let outcome = progress.poll(timeout, || job_outcome(&jobs, &name)).await?;
    match outcome {
        Ok(JobOutcome::Succeeded) => {
            let log = pod_log(&pods, &name, container).await?;
            progress.finish(&format!("Job {SYSTEM_NAMESPACE}/{name} succeeded"));
            Ok(log)
        }
        Ok(JobOutcome::Failed) => {
            progress.finish(&format!("Job {SYSTEM_NAMESPACE}/{name} failed"));
            let why = pod_log(&pods, &name, container)
                .await
                .ok()
                .and_then(|log| {
                    log.lines()
                        .rev()
                        .find(|line| line.starts_with("error:") || line.contains("caused by"))
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| {
                    format!("`kubectl -n {SYSTEM_NAMESPACE} logs job/{name}` says why")
                });
            bail!("Job {SYSTEM_NAMESPACE}/{name} failed: {}", why.trim());
        }
        Err(_) => {
            progress.finish(&format!("Job {SYSTEM_NAMESPACE}/{name} did not finish"));
            bail!(
                "timed out after {} waiting for Job {SYSTEM_NAMESPACE}/{name}; it goes on \
                 (`kubectl -n {SYSTEM_NAMESPACE} logs job/{name}`)",
                super::progress::elapsed(timeout)
            );
        }
    }
}

/// How a Job ended.
enum JobOutcome {
    Succeeded,
    Failed,
}

/// One look at Job `name`: ended, or what it is doing.
async fn job_outcome(jobs: &Api<Job>, name: &str) -> anyhow::Result<Look<JobOutcome>> {
    let status = jobs
        .get_opt(name)
        .await
        .with_context(|| format!("reading Job {SYSTEM_NAMESPACE}/{name}"))?
        .with_context(|| format!("Job {SYSTEM_NAMESPACE}/{name} was deleted"))?
        .status
        .unwrap_or_default();
    let condition = |type_: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == type_ && c.status == "True")
    };
    Ok(
        if status.succeeded.unwrap_or(0) > 0 || condition("Complete") {
            Look::Done(JobOutcome::Succeeded)
        } else if condition("Failed") {
            Look::Done(JobOutcome::Failed)
        } else if status.active.unwrap_or(0) > 0 {
            Look::Waiting(format!("Job {SYSTEM_NAMESPACE}/{name} running"))
        } else {
            Look::Waiting(format!("Job {SYSTEM_NAMESPACE}/{name} starting"))
        },
    )
}

/// The log of the newest pod of Job `job`.
async fn pod_log(pods: &Api<Pod>, job: &str, container: &str) -> anyhow::Result<String> {
    let selector = format!("job-name={job}");
    let mut found = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .with_context(|| format!("listing the pods of Job {SYSTEM_NAMESPACE}/{job}"))?
        .items;
    found.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .cmp(&b.metadata.creation_timestamp.as_ref().map(|t| t.0))
    });
    let pod = found
        .last()
        .and_then(|pod| pod.metadata.name.clone())
        .with_context(|| format!("Job {SYSTEM_NAMESPACE}/{job} has no pod"))?;
    pods.logs(
        &pod,
        &LogParams {
            container: Some(container.to_owned()),
            ..LogParams::default()
        },
    )
    .await
    .with_context(|| format!("reading the log of pod {SYSTEM_NAMESPACE}/{pod}"))
}

pub(crate) fn run_restore(args: RestoreArgs) -> anyhow::Result<()> {
    let mut session = Session::load(&args.kubeconfig)?;
    let runtime = super::runtime()?;
    runtime.block_on(restore(&mut session, args))
}

/// The ControlPlane a restore creates: the source's spec when it still exists (without its
/// backups, which the new control plane does not inherit), else a k8s control plane.
fn restored_control_plane(
    target: &str,
    source: Option<&ControlPlane>,
    restore: RestoreFrom,
    backend: Option<BackendArg>,
) -> anyhow::Result<ControlPlane> {
    let mut spec: ControlPlaneSpec = match source {
        Some(source) => {
            if source.spec.type_ != ControlPlaneType::K8s {
                bail!(
                    "ControlPlane {} is of type {}: only a k8s control plane's database is \
                     backed up and restored",
                    restore.control_plane,
                    source.spec.type_
                );
            }
            let mut spec = source.spec.clone();
            spec.backup = None;
            spec
        }
        None => serde_json::from_value(json!({"type": "k8s", "backend": "shared"}))?,
    };
    if let Some(backend) = backend {
        spec.backend = Some(match backend {
            BackendArg::Shared => BackendDbType::Shared,
            BackendArg::Dedicated => BackendDbType::Dedicated,
        });
    }
    spec.restore_from = Some(restore);
    let cp = ControlPlane::new(target, spec);
    validate_control_plane(&cp).map_err(|err| anyhow::anyhow!("ControlPlane {target:?}: {err}"))?;
    Ok(cp)
}

/// What `restore -o json` prints.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct RestoreResult<'a> {
    control_plane: &'a str,
    restore_from: &'a RestoreFrom,
    ready: bool,
}

async fn restore(session: &mut Session, args: RestoreArgs) -> anyhow::Result<()> {
    let target = args.as_.clone().unwrap_or_else(|| args.name.clone());
    if let Some(why) = crate::bootstrap::backup::name_problem(&args.backup) {
        bail!("--backup: {why}");
    }
    let (hosting, client) = session.hosting_client().await?;
    let settings = super::live::hosting_settings(&client).await?;
    let control_planes: Api<ControlPlane> = Api::all(client.clone());
    if control_planes
        .get_opt(&target)
        .await
        .with_context(|| format!("reading ControlPlanes (hosting context {hosting:?})"))?
        .is_some()
    {
        let hint = if args.as_.is_some() {
            format!("delete it first (`kflex delete {target}`), or choose another name")
        } else {
            format!(
                "a restore creates a control plane: delete {target} first (`kflex delete \
                 {target}`), or restore a copy under another name with --as"
            )
        };
        bail!("ControlPlane {target} exists; {hint}");
    }
    let source = control_planes
        .get_opt(&args.name)
        .await
        .with_context(|| format!("reading ControlPlane {}", args.name))?;
    let store = storage_of(&client, &settings, &args.name, args.storage.as_deref()).await?;
    let restore_from = RestoreFrom {
        control_plane: args.name.clone(),
        backup: args.backup.clone(),
        storage: Some(store.name.clone()),
    };
    let cp = restored_control_plane(&target, source.as_ref(), restore_from.clone(), args.backend)?;
    // The cluster's own rules (storage, who may restore whose backups) before anything runs.
    validate_backup(&cp, &settings.backup)
        .map_err(|err| anyhow::anyhow!("ControlPlane {target:?}: {err}"))?;
    let listing = listing(
        &client,
        &settings,
        &args.name,
        &store,
        Duration::from_secs(300),
    )
    .await?;
    if !listing.backups.iter().any(|b| b.name == args.backup) {
        bail!(
            "there is no backup {} of {} in storage {} (`kflex backup list {}` shows the {} \
             there); nothing was created",
            args.backup,
            args.name,
            store.name,
            args.name,
            listing.backups.len()
        );
    }
    eprintln!(
        "restoring backup {} of {} into {} (storage {})",
        args.backup, args.name, target, store.name
    );
    super::create::create(session, cp, None, args.waiting).await?;
    if args.output == Format::Json {
        print_line(&serde_json::to_string_pretty(&RestoreResult {
            control_plane: &target,
            restore_from: &restore_from,
            ready: args.waiting.wait,
        })?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(size(512), "512B");
        assert_eq!(size(1536), "1.5KiB");
        assert_eq!(size(12 * 1024 * 1024), "12.0MiB");
    }

    #[test]
    fn the_result_is_the_last_json_line_of_the_log() {
        let log = "waiting for Secret cp1-system/kine-datastore\n\
                   {\"controlPlane\":\"cp1\",\"store\":\"local\",\"backups\":[]}\n";
        let listing: Listing = result(log, "j").unwrap();
        assert_eq!(listing.control_plane, "cp1");
        assert!(result::<Listing>("error: nothing\n", "j").is_err());
    }

    #[test]
    fn a_restore_copies_the_source_but_not_its_backups_and_refuses_other_types() {
        let source: ControlPlane = serde_json::from_value(json!({
            "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1", "kind": "ControlPlane",
            "metadata": {"name": "prod"},
            "spec": {"type": "k8s", "backend": "dedicated", "replicas": 3,
                     "backup": {"schedule": "@daily"}},
        }))
        .unwrap();
        let from = RestoreFrom {
            control_plane: "prod".into(),
            backup: "b1".into(),
            storage: None,
        };
        let cp = restored_control_plane("staging", Some(&source), from.clone(), None).unwrap();
        assert_eq!(cp.spec.replicas, Some(3));
        assert_eq!(cp.spec.backend, Some(BackendDbType::Dedicated));
        assert!(cp.spec.backup.is_none());
        assert_eq!(cp.spec.restore_from.as_ref(), Some(&from));
        let mut k3s = source;
        k3s.spec = serde_json::from_value(json!({"type": "k3s"})).unwrap();
        let err = restored_control_plane("x", Some(&k3s), from.clone(), None).unwrap_err();
        assert!(err.to_string().contains("of type k3s"), "{err}");
        let gone = restored_control_plane("prod", None, from, Some(BackendArg::Dedicated)).unwrap();
        assert_eq!(gone.spec.type_, ControlPlaneType::K8s);
        assert_eq!(gone.spec.backend, Some(BackendDbType::Dedicated));
    }
}
