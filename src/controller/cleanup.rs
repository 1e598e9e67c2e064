//! Deleting a control plane. The finalizer holds the ControlPlane while kflex cleans up what
//! Kubernetes' garbage collector cannot: for type k8s, a Job drops its database and role from
//! the shared PostgreSQL. Then the members the garbage collector does not remove (those in the
//! system namespace, which carry no owner reference so the drop can still use them) and the
//! cluster-scoped ones are deleted — those that belong to the control plane by the rules of
//! [`trust`], whatever the ControlPlane's annotations list — and the finalizer released; the
//! garbage collector removes the rest through owner references. Whatever keeps failing — the Job, the configuration, the
//! API — is reported, and after `cleanup_timeout` given up with a warning, so deletion never
//! hangs forever.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kflex_core::api::ControlPlane;
use kflex_core::api::conditions::reason;
use kflex_core::manifest::{Manifest, ObjectKey};
use kflex_core::render::{HookCatalog, RenderError, Renderer, facts};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::config::ConfigError;
use super::context::Context;
use super::error::{Error, chain};
use super::prune;
use super::status::{self, Condition, Findings, READY, SYNCED};
use super::{events, settings_for};
use crate::cluster;
use crate::cluster::ownership::{self, Members};
use crate::cluster::trust::{self, Owner};

/// The finalizer kflex puts on every ControlPlane.
pub const FINALIZER: &str = "kflex.kubestellar.org/finalizer";

const POLL: Duration = Duration::from_secs(5);

/// One thing a cleanup pass could not do; reported on the ControlPlane and retried until the
/// cleanup timeout. (Object keys are boxed: a key and a `kube::Error` side by side make every
/// `Result` of it large.)
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("the cleanup cannot be rendered")]
    Configuration(#[source] ConfigError),
    #[error("failed to render the cleanup Jobs")]
    RenderJobs(#[source] RenderError),
    #[error("failed to render the control plane's objects")]
    Render(#[source] RenderError),
    #[error("failed to find the API resource of {job}")]
    Discover {
        job: Box<ObjectKey>,
        #[source]
        source: anyhow::Error,
    },
    #[error("failed to read {job}")]
    ReadJob {
        job: Box<ObjectKey>,
        #[source]
        source: kube::Error,
    },
    #[error("failed to create {job}")]
    CreateJob {
        job: Box<ObjectKey>,
        #[source]
        source: Box<cluster::Error>,
    },
    #[error("{job} failed: {message}")]
    JobFailed {
        job: Box<ObjectKey>,
        message: String,
    },
    #[error("failed to delete {job}")]
    DeleteJob {
        job: Box<ObjectKey>,
        #[source]
        source: kube::Error,
    },
    #[error("failed to find the members of ControlPlane {name}")]
    FindMembers {
        name: String,
        #[source]
        source: Box<cluster::Error>,
    },
    // The error names the member itself.
    #[error(transparent)]
    DeleteMember(Box<cluster::Error>),
}

/// Everything one cleanup pass could not do, as the Synced condition and Events say it.
#[derive(Debug, Default)]
pub struct Problems(Vec<CleanupError>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let each: Vec<String> = self.0.iter().map(|problem| chain(problem)).collect();
        f.write_str(&each.join("; "))
    }
}

impl Problems {
    fn into_result(self) -> Result<(), Self> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

enum JobState {
    Succeeded,
    Running,
    Failed(String),
}

/// The API of cleanup Job `job`'s kind, in its namespace (kubeflex-system unless it names one).
async fn job_api(ctx: &Context, job: &Manifest) -> Result<Api<DynamicObject>, CleanupError> {
    let resource = ctx
        .resources
        .resolve(job.api_version(), job.kind())
        .await
        .map_err(|source| CleanupError::Discover {
            job: job.key().into(),
            source,
        })?;
    let namespace = job.namespace().unwrap_or(&ctx.system_namespace);
    Ok(Api::namespaced_with(
        ctx.client.clone(),
        namespace,
        &resource,
    ))
}

async fn run_job(ctx: &Context, job: &Manifest) -> Result<JobState, CleanupError> {
    let api = job_api(ctx, job).await?;
    let found = api
        .get_opt(job.name())
        .await
        .map_err(|source| CleanupError::ReadJob {
            job: job.key().into(),
            source,
        })?;
    let live = match found {
        Some(live) => live,
        None => {
            cluster::apply::apply(&ctx.client, &api, job)
                .await
                .map_err(|source| CleanupError::CreateJob {
                    job: job.key().into(),
                    source: source.into(),
                })?
                .live
        }
    };
    let succeeded = live
        .data
        .pointer("/status/succeeded")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        > 0;
    if succeeded {
        return Ok(JobState::Succeeded);
    }
    let failed = live
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c["type"] == "Failed" && c["status"] == "True")
        });
    Ok(match failed {
        Some(condition) => JobState::Failed(
            condition["message"]
                .as_str()
                .unwrap_or("no message")
                .to_owned(),
        ),
        None => JobState::Running,
    })
}

async fn delete_job(ctx: &Context, job: &Manifest) -> Result<(), CleanupError> {
    let api = job_api(ctx, job).await?;
    match api.delete(job.name(), &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(source) => Err(CleanupError::DeleteJob {
            job: job.key().into(),
            source,
        }),
    }
}

/// Runs the cleanup Jobs (the k8s database drop): whether all finished, or what went wrong.
async fn drop_databases(cp: &ControlPlane, ctx: &Context) -> Result<bool, Problems> {
    let jobs = cleanup_jobs(cp, ctx).map_err(|problem| Problems(vec![problem]))?;
    let mut done = true;
    let mut problems = Problems::default();
    for job in &jobs {
        match run_job(ctx, job).await {
            Ok(JobState::Succeeded) => {}
            Ok(JobState::Running) => done = false,
            Ok(JobState::Failed(message)) => problems.0.push(CleanupError::JobFailed {
                job: job.key().into(),
                message,
            }),
            Err(problem) => problems.0.push(problem),
        }
    }
    problems.into_result().map(|()| done)
}

fn renderer(ctx: &Context) -> Result<Arc<Renderer>, CleanupError> {
    // Without the settings nothing can be rendered: a problem like any other, retried until
    // the cleanup timeout.
    settings_for(ctx)
        .and_then(|settings| ctx.renderers.get(&settings))
        .map_err(CleanupError::Configuration)
}

fn cleanup_jobs(cp: &ControlPlane, ctx: &Context) -> Result<Vec<Manifest>, CleanupError> {
    renderer(ctx)?
        .render_cleanup(cp)
        .map_err(CleanupError::RenderJobs)
}

/// Every object the control plane renders — its set and its cleanup Jobs. In the system
/// namespace, only these may be deleted; and their kinds are looked for even when the
/// ControlPlane's annotations no longer list them, so that nothing there is left behind.
/// Its PostCreateHooks are left out: the renderer never lets a hook place an object in the
/// system namespace, so they change nothing there, and a hook deleted before its ControlPlane
/// does not hold the cleanup.
fn rendered(cp: &ControlPlane, ctx: &Context) -> Result<Vec<Manifest>, CleanupError> {
    let renderer = renderer(ctx)?;
    let mut without_hooks = cp.clone();
    without_hooks.spec.post_create_hook = None;
    without_hooks.spec.post_create_hooks = None;
    let mut manifests = renderer
        .render(&without_hooks, &HookCatalog::default())
        .map_err(CleanupError::Render)?
        .manifests;
    manifests.extend(
        renderer
            .render_cleanup(cp)
            .map_err(CleanupError::RenderJobs)?,
    );
    Ok(manifests)
}

/// Deletes what the garbage collector does not: the cleanup Jobs, and the members that have no
/// owner reference (those in the system namespace) or are cluster-scoped (so they go now, not
/// whenever the collector gets to them) — only those that belong to the control plane (see
/// [`trust`]); the others listed are reported and left alone.
async fn remove_members(cp: &ControlPlane, ctx: &Context) -> Result<(), Problems> {
    let mut problems = Problems::default();
    for job in cleanup_jobs(cp, ctx).unwrap_or_default() {
        if let Err(problem) = delete_job(ctx, &job).await {
            problems.0.push(problem);
        }
    }
    let name = cp.metadata.name.clone().unwrap_or_default();
    let annotations = cp.metadata.annotations.clone().unwrap_or_default();
    let mut recorded = Members::recorded(&annotations);
    // A render that fails (reported by the cleanup Jobs already) leaves nothing in the system
    // namespace trusted.
    let rendered = rendered(cp, ctx).ok();
    if let Some(manifests) = &rendered {
        recorded = recorded.union(&Members::of(manifests));
    }
    let rendered_keys: Option<HashSet<ObjectKey>> = rendered
        .as_ref()
        .map(|manifests| manifests.iter().map(Manifest::key).collect());
    let owner = Owner {
        control_plane: &name,
        system_namespace: &ctx.system_namespace,
        generated_secrets: facts(cp.spec.type_).map_or(&[], |f| f.generated_secrets),
        rendered: rendered_keys.as_ref(),
    };
    match prune::members(ctx, &ownership::applyset_id(&name), &recorded).await {
        Ok(members) => {
            let mut refused = Vec::new();
            for member in &members {
                if let Some(refusal) = trust::refusal(&owner, &member.key, &member.found) {
                    refused.push(refusal);
                    continue;
                }
                let collected = member
                    .key
                    .namespace
                    .as_deref()
                    .is_some_and(|namespace| namespace != ctx.system_namespace);
                if collected {
                    continue;
                }
                if let Err(err) = prune::delete(ctx, member).await {
                    problems.0.push(CleanupError::DeleteMember(err.into()));
                }
            }
            events::refused(ctx, cp, &refused).await;
        }
        Err(source) => problems.0.push(CleanupError::FindMembers {
            name,
            source: source.into(),
        }),
    }
    problems.into_result()
}

/// Cleans up after `cp`, which is being deleted; releases it when done. Any cleanup problem is
/// reported and retried until `cleanup_timeout` after the deletion; then it is given up with a
/// Warning Event and the ControlPlane released anyway.
pub async fn cleanup(cp: &ControlPlane, ctx: &Context) -> Result<Action, Error> {
    let name = cp.metadata.name.clone().unwrap_or_default();
    let finalizers = cp.metadata.finalizers.clone().unwrap_or_default();
    let Some(index) = finalizers.iter().position(|f| f == FINALIZER) else {
        return Ok(Action::await_change());
    };
    let api: Api<ControlPlane> = Api::all(ctx.client.clone());
    let deleted_at = cp
        .metadata
        .deletion_timestamp
        .as_ref()
        .map_or_else(|| (ctx.clock)(), |t| t.0.as_second());
    let timeout = i64::try_from(ctx.options.cleanup_timeout.as_secs()).unwrap_or(i64::MAX);
    let overdue = (ctx.clock)() >= deleted_at.saturating_add(timeout);

    // The database goes first: removing the members removes the ServiceAccount its Job runs as.
    let outcome = match drop_databases(cp, ctx).await {
        Ok(true) => remove_members(cp, ctx).await.map(|()| true),
        other => other,
    };
    match outcome {
        Ok(true) => {}
        Ok(false) | Err(_) if !overdue => {
            let synced = match &outcome {
                Err(problems) => {
                    Condition::new(SYNCED, false, reason::CLEANUP_FAILED, problems.to_string())
                }
                _ => Condition::new(
                    SYNCED,
                    true,
                    reason::CLEANUP_RUNNING,
                    "waiting for the cleanup Jobs",
                ),
            };
            let findings = Findings {
                synced: Some(synced),
                ready: Some(Condition::new(
                    READY,
                    false,
                    reason::DELETING,
                    "the control plane is being deleted",
                )),
                ..Findings::default()
            };
            let (next, transitions) = status::next(cp, &findings, &super::timestamp(ctx));
            status::write(&api, cp, &next)
                .await
                .map_err(|source| Error::PatchStatus {
                    name: name.clone(),
                    source,
                })?;
            events::publish(ctx, cp, &transitions).await;
            return Ok(Action::requeue(POLL));
        }
        Ok(false) | Err(_) => {
            let problem = match outcome {
                Err(problems) => problems.to_string(),
                _ => "the cleanup Jobs did not finish".to_owned(),
            };
            // Best effort: what can still be removed is.
            let left = remove_members(cp, ctx)
                .await
                .err()
                .map(|more| format!("; also: {more}"))
                .unwrap_or_default();
            events::warn(
                ctx,
                cp,
                "CleanupAbandoned",
                &format!("gave up cleaning up after {timeout}s: {problem}{left}"),
            )
            .await;
        }
    }
    // Pinned to the version read, so a finalizer someone added meanwhile is not lost.
    let mut remaining = finalizers;
    remaining.remove(index);
    let patch = json!({"metadata": {
        "finalizers": remaining,
        "resourceVersion": cp.metadata.resource_version,
    }});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.is_not_found() => {}
        Err(source) => return Err(Error::ReleaseFinalizer { name, source }),
    }
    ctx.forget(&name);
    Ok(Action::await_change())
}
