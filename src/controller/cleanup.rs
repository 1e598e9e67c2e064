//! Deleting a control plane. The finalizer holds the ControlPlane while kflex cleans up what
//! Kubernetes' garbage collector cannot: for type k8s, a Job drops its database and role from
//! the shared PostgreSQL. Then the cluster-scoped members of its set are deleted and the
//! finalizer released; the garbage collector removes the rest through owner references. A
//! cleanup that keeps failing is reported, and after `cleanup_timeout` given up with a warning,
//! so deletion never hangs forever.

use std::time::Duration;

use anyhow::Context as _;
use kflex_core::api::ControlPlane;
use kflex_core::manifest::Manifest;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::apply::FIELD_MANAGER;
use super::context::Context;
use super::ownership::{self, CONTAINS_GROUP_KINDS};
use super::prune;
use super::status::{self, Condition, Findings, READY, SYNCED};
use super::{events, settings_for};

/// The finalizer kflex puts on every ControlPlane.
pub const FINALIZER: &str = "kflex.kubestellar.org/finalizer";

const POLL: Duration = Duration::from_secs(5);

enum JobState {
    Succeeded,
    Running,
    Failed(String),
}

async fn run_job(ctx: &Context, job: &Manifest) -> anyhow::Result<JobState> {
    let resource = ctx.resources.resolve(job.api_version(), job.kind()).await?;
    let namespace = job.namespace().unwrap_or(&ctx.system_namespace);
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    let live = match api.get_opt(job.name()).await? {
        Some(live) => live,
        None => api
            .patch(
                job.name(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(Value::Object(job.object().clone())),
            )
            .await
            .with_context(|| format!("creating {}", job.key()))?,
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
        Some(condition) => JobState::Failed(format!(
            "{} failed: {}",
            job.key(),
            condition["message"].as_str().unwrap_or("no message")
        )),
        None => JobState::Running,
    })
}

async fn delete_job(ctx: &Context, job: &Manifest) -> anyhow::Result<()> {
    let resource = ctx.resources.resolve(job.api_version(), job.kind()).await?;
    let namespace = job.namespace().unwrap_or(&ctx.system_namespace);
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    match api.delete(job.name(), &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(err) => Err(anyhow::anyhow!("deleting {}: {err}", job.key())),
    }
}

/// Cleans up after `cp`, which is being deleted; releases it when done (or given up).
pub async fn cleanup(cp: &ControlPlane, ctx: &Context) -> anyhow::Result<Action> {
    let name = cp.metadata.name.clone().unwrap_or_default();
    let finalizers = cp.metadata.finalizers.clone().unwrap_or_default();
    let Some(index) = finalizers.iter().position(|f| f == FINALIZER) else {
        return Ok(Action::await_change());
    };
    let api: Api<ControlPlane> = Api::all(ctx.client.clone());
    let deleting = Condition::new(
        READY,
        false,
        "Deleting",
        "the control plane is being deleted",
    );
    let deleted_at = cp
        .metadata
        .deletion_timestamp
        .as_ref()
        .map_or_else(|| (ctx.clock)(), |t| t.0.as_second());
    let timeout = i64::try_from(ctx.options.cleanup_timeout.as_secs()).unwrap_or(i64::MAX);
    let overdue = (ctx.clock)() >= deleted_at.saturating_add(timeout);

    let settings = settings_for(ctx)?;
    let renderer = ctx.renderers.get(&settings)?;
    let jobs = renderer.render_cleanup(cp).unwrap_or_default();
    let mut problem = None;
    let mut running = false;
    for job in &jobs {
        match run_job(ctx, job).await {
            Ok(JobState::Succeeded) => {}
            Ok(JobState::Running) => running = true,
            Ok(JobState::Failed(reason)) => problem = Some(reason),
            Err(err) => problem = Some(format!("{err:#}")),
        }
    }
    if (running || problem.is_some()) && !overdue {
        let synced = match &problem {
            Some(reason) => Condition::new(SYNCED, false, "CleanupFailed", reason.clone()),
            None => Condition::new(
                SYNCED,
                true,
                "CleanupRunning",
                "waiting for the cleanup Jobs",
            ),
        };
        let findings = Findings {
            synced: Some(synced),
            ready: Some(deleting),
            ..Findings::default()
        };
        let (next, transitions) = status::next(cp, &findings, &super::timestamp(ctx));
        status::write(&api, cp, &next).await?;
        events::publish(ctx, cp, &transitions).await;
        return Ok(Action::requeue(POLL));
    }
    if running || problem.is_some() {
        events::warn(
            ctx,
            cp,
            "CleanupAbandoned",
            &format!(
                "gave up cleaning up after {}s: {}",
                timeout,
                problem
                    .as_deref()
                    .unwrap_or("the cleanup Jobs did not finish")
            ),
        )
        .await;
    }
    for job in &jobs {
        delete_job(ctx, job).await?;
    }
    // Cluster-scoped members (their namespace, a host's binding, hooks' cluster objects).
    let annotations = cp.metadata.annotations.clone().unwrap_or_default();
    let kinds = ownership::split(annotations.get(CONTAINS_GROUP_KINDS));
    let id = ownership::applyset_id(&name);
    prune::delete_cluster_scoped(ctx, &id, &kinds).await?;
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
        Err(err) => return Err(anyhow::anyhow!("releasing ControlPlane {name}: {err}")),
    }
    ctx.forget(&name);
    Ok(Action::await_change())
}
