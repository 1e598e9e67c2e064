//! One reconcile of one ControlPlane: render it exactly as `kflex render` would, apply what
//! changed, prune what is no longer rendered, and report status — writing nothing at all when
//! nothing changed.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kflex_core::api::conditions::reason;
use kflex_core::api::{ControlPlane, ControlPlaneType, SecretReference};
use kflex_core::manifest::{Manifest, ObjectKey};
use kflex_core::render::{RenderError, SetError, facts, metadata};
use kube::api::{Api, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::apply::Trust;
use super::cleanup::{self, FINALIZER};
use super::context::{Context, Record};
pub use super::error::Error;
use super::error::{ApplyFailures, Class, chain};
use super::readiness::{ReadinessError, api_serving, has_rule, object_ready};
use super::status::{self, Condition, Findings, READY, SYNCED};
use super::{apply, desired, events, exposure, prune, settings_for, timestamp};
use crate::cluster::ownership::{self, Members};
use crate::cluster::trust::Owner;

/// The annotation that pauses reconciliation of a control plane.
pub const PAUSED: &str = "kflex.kubestellar.org/paused";

/// Reconciles `cp`.
pub async fn reconcile(cp: Arc<ControlPlane>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = cp.metadata.name.clone().unwrap_or_default();
    ctx.metrics.dequeued(&name);
    let timer = std::time::Instant::now();
    let outcome = reconcile_named(&ctx, &name).await;
    ctx.metrics
        .reconcile_seconds
        .observe(timer.elapsed().as_secs_f64());
    match outcome {
        Ok((action, result)) => {
            ctx.succeeded(&name);
            ctx.metrics.count_reconcile(result);
            Ok(action)
        }
        Err(err) => {
            ctx.metrics.count_reconcile("error");
            ctx.metrics.count_error(err.label());
            // Nothing the controller retries fixes this: say so where `kubectl describe` shows
            // it (the status may be what it cannot write), once per run of failures, not on
            // every retry.
            if let Some(forbidden) = err.forbidden()
                && ctx.failures_in_a_row(&name) == 0
            {
                events::warn(ctx.as_ref(), &cp, "Forbidden", &forbidden).await;
            }
            Err(err)
        }
    }
}

/// Reconciles ControlPlane `name`; the action and the result the metrics count (`ok` or
/// `paused`).
async fn reconcile_named(ctx: &Context, name: &str) -> Result<(Action, &'static str), Error> {
    ctx.caches_ready().await.map_err(|source| Error::Caches {
        name: name.to_owned(),
        source,
    })?;
    let Some(cp) = fresh(ctx, name).await? else {
        // Gone (released by kflex, or its finalizer removed by someone): forget it.
        ctx.forget(name);
        return Ok((Action::await_change(), "ok"));
    };
    if cp.metadata.deletion_timestamp.is_some() {
        return Ok((cleanup::cleanup(&cp, ctx).await?, "ok"));
    }
    let annotations = cp.metadata.annotations.clone().unwrap_or_default();
    if annotations.get(PAUSED).is_some_and(|v| v == "true") {
        let action = blocked(
            ctx,
            &cp,
            reason::RECONCILE_PAUSED,
            format!("reconciliation is paused by annotation {PAUSED}=\"true\""),
        )
        .await?;
        return Ok((action, "paused"));
    }
    Ok((sync(&cp, ctx).await?, "ok"))
}

/// The ControlPlane as the API has it now. The watch cache the controller was woken from can
/// lag behind the controller's own last writes; deciding on it would write from stale state.
async fn fresh(ctx: &Context, name: &str) -> Result<Option<ControlPlane>, Error> {
    let api: Api<ControlPlane> = Api::all(ctx.client.clone());
    api.get_opt(name)
        .await
        .map_err(|source| Error::ReadControlPlane {
            name: name.to_owned(),
            source,
        })
}

/// Why `cp` must not be rendered because its `spec.restoreFrom` names a control plane of another
/// type, looked up in the cluster. Only before the control plane was first acted on: the restore
/// happens once, on creation, and the source may change or go afterwards.
async fn foreign_restore_source(ctx: &Context, cp: &ControlPlane) -> Result<Option<String>, Error> {
    let Some(restore) = &cp.spec.restore_from else {
        return Ok(None);
    };
    let acted_on = cp
        .status
        .as_ref()
        .is_some_and(|s| s.observed_generation > 0);
    if acted_on || Some(restore.control_plane.as_str()) == cp.metadata.name.as_deref() {
        return Ok(None);
    }
    let source = fresh(ctx, &restore.control_plane).await?;
    Ok(
        kflex_core::api::validate_restore_source(cp, source.as_ref())
            .err()
            .map(|err| {
                format!(
                    "failed to render ControlPlane {:?}: {err}",
                    cp.metadata.name.as_deref().unwrap_or_default()
                )
            }),
    )
}

/// How many conflicts in a row are retried at once; more are another writer in a loop, and
/// backed off like any failure.
const CONFLICT_RETRIES: u32 = 3;

/// When to try again after `failures` failures in a row, the last of class `class`; `None`:
/// when something the controller watches changes.
///
/// | class                        | retry                                                   |
/// |------------------------------|---------------------------------------------------------|
/// | conflict (409)               | 1 s, for the first 3 in a row; then as any other        |
/// | forbidden (403)              | 60 s, doubling, at most 5 minutes                       |
/// | configuration                | on a change (the settings ConfigMap's watch wakes all)  |
/// | any other                    | 5 s, doubling, at most 5 minutes                        |
///
/// A conflict means another writer changed the object since it was read; the next pass reads
/// it afresh, so waiting longer gains nothing. A forbidden request needs an administrator to
/// grant the controller more RBAC: retrying soon only adds load (and the reconcile published
/// an Event saying what is missing). A configuration error needs the ConfigMap fixed, which
/// wakes every ControlPlane.
pub fn retry_after(class: Class, failures: u32) -> Option<Duration> {
    let doubling = |first: u64| {
        first
            .saturating_mul(1 << failures.saturating_sub(1).min(6))
            .min(300)
    };
    let seconds = match class {
        Class::Conflict if failures <= CONFLICT_RETRIES => 1,
        Class::Configuration => return None,
        Class::Forbidden => doubling(60),
        Class::Conflict | Class::Other => doubling(5),
    };
    Some(Duration::from_secs(seconds))
}

/// After a failed reconcile: when to try again, by what failed ([`retry_after`]).
pub fn error_policy(cp: Arc<ControlPlane>, err: &Error, ctx: Arc<Context>) -> Action {
    let name = cp.metadata.name.clone().unwrap_or_default();
    let failures = ctx.failed(&name);
    let class = err.class();
    let retry = retry_after(class, failures);
    let retry_in_s = retry.map(|after| after.as_secs());
    let error = chain(err);
    match err.forbidden() {
        Some(forbidden) => {
            tracing::warn!(control_plane = %name, failures, ?retry_in_s, kind = err.label(), %error, "reconcile failed: {forbidden}");
        }
        None => {
            tracing::warn!(control_plane = %name, failures, ?retry_in_s, kind = err.label(), ?class, %error, "reconcile failed");
        }
    }
    retry.map_or_else(Action::await_change, Action::requeue)
}

/// The hooks `cp` uses, in KubeFlex's order (deprecated single hook first; first use wins).
/// Linear in the number of uses: a ControlPlane may list tens of thousands.
fn hook_names(cp: &ControlPlane) -> Vec<String> {
    let spec = &cp.spec;
    let uses = spec.post_create_hook.iter().chain(
        spec.post_create_hooks
            .iter()
            .flatten()
            .map(|u| &u.hook_name),
    );
    let mut seen: HashSet<&str> = HashSet::new();
    uses.filter(|name| !name.is_empty() && seen.insert(name.as_str()))
        .cloned()
        .collect()
}

/// A fingerprint of the whole rendered set, as applied (ownership included).
fn set_hash(manifests: &[Manifest]) -> String {
    let mut hasher = Sha256::new();
    for manifest in manifests {
        hasher.update(
            serde_json::to_string(manifest.object())
                .unwrap_or_default()
                .as_bytes(),
        );
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn report(ctx: &Context, cp: &ControlPlane, findings: &Findings) -> Result<(), Error> {
    let api: Api<ControlPlane> = Api::all(ctx.client.clone());
    let (next, transitions) = status::next(cp, findings, &timestamp(ctx));
    status::write(&api, cp, &next)
        .await
        .map_err(|source| Error::PatchStatus {
            name: cp.metadata.name.clone().unwrap_or_default(),
            source,
        })?;
    events::publish(ctx, cp, &transitions).await;
    Ok(())
}

/// A reconcile that cannot go on until the ControlPlane, a hook or the configuration changes.
async fn blocked(
    ctx: &Context,
    cp: &ControlPlane,
    reason: &str,
    message: String,
) -> Result<Action, Error> {
    let findings = Findings {
        synced: Some(Condition::new(SYNCED, false, reason, message)),
        ..Findings::default()
    };
    report(ctx, cp, &findings).await?;
    Ok(Action::await_change())
}

/// A control plane `kflex render` refuses: say why, and do not apply anything. A type kflex does
/// not run (ocm) is also not Ready, for good: KubeFlex left it waiting forever.
async fn not_rendered(
    ctx: &Context,
    cp: &ControlPlane,
    missing_hook: bool,
    message: String,
) -> Result<Action, Error> {
    let (synced, ready) = if cp.spec.type_ == ControlPlaneType::Ocm {
        let ready = Condition::new(READY, false, reason::UNSUPPORTED, message.clone());
        (
            Condition::new(SYNCED, false, reason::UNSUPPORTED, message),
            Some(ready),
        )
    } else if missing_hook {
        (
            Condition::new(SYNCED, false, reason::POST_CREATE_HOOK_NOT_FOUND, message),
            None,
        )
    } else {
        (
            Condition::new(SYNCED, false, reason::RECONCILE_ERROR, message),
            None,
        )
    };
    let findings = Findings {
        synced: Some(synced),
        ready,
        observed: true,
        ..Findings::default()
    };
    report(ctx, cp, &findings).await?;
    Ok(Action::await_change())
}

/// A pass that did not complete: Synced says why (once; the message is stable while the
/// problem is), and the reconcile fails with `err` so it is retried with backoff.
async fn failed(
    ctx: &Context,
    cp: &ControlPlane,
    reason: &str,
    err: Error,
) -> Result<Action, Error> {
    // The condition is the ControlPlane's own: the causes say it, without "ControlPlane cp1".
    let message = std::error::Error::source(&err)
        .map(chain)
        .unwrap_or_default();
    let findings = Findings {
        synced: Some(Condition::new(SYNCED, false, reason, message)),
        observed: true,
        ..Findings::default()
    };
    report(ctx, cp, &findings).await?;
    Err(err)
}

/// The finalizer and the ApplySet parent metadata on the ControlPlane, in one write when
/// something is missing; the ControlPlane as it is afterwards.
async fn ensure_parent(
    ctx: &Context,
    cp: &ControlPlane,
    members: &Members,
) -> Result<ControlPlane, Error> {
    let name = cp.metadata.name.clone().unwrap_or_default();
    let (labels, annotations) = ownership::parent_metadata(&name, members);
    let have_labels = cp.metadata.labels.clone().unwrap_or_default();
    let have_annotations = cp.metadata.annotations.clone().unwrap_or_default();
    let finalizers = cp.metadata.finalizers.clone().unwrap_or_default();
    let has_finalizer = finalizers.iter().any(|f| f == FINALIZER);
    let labelled = labels.iter().all(|(k, v)| have_labels.get(k) == Some(v));
    let annotated = annotations
        .iter()
        .all(|(k, v)| have_annotations.get(k) == v.as_ref());
    if has_finalizer && labelled && annotated {
        return Ok(cp.clone());
    }
    // `null` removes an annotation in a merge patch.
    let mut metadata = json!({"labels": labels, "annotations": annotations});
    if !has_finalizer {
        let mut with_ours = finalizers;
        with_ours.push(FINALIZER.to_owned());
        metadata["finalizers"] = json!(with_ours);
        // Pinned to the version read, so a finalizer someone added meanwhile is not lost.
        metadata["resourceVersion"] = json!(cp.metadata.resource_version);
    }
    let api: Api<ControlPlane> = Api::all(ctx.client.clone());
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": metadata })),
    )
    .await
    .map_err(|source| Error::PatchParent { name, source })
}

async fn sync(cp: &ControlPlane, ctx: &Context) -> Result<Action, Error> {
    let name = cp.metadata.name.clone().unwrap_or_default();
    let annotations = cp.metadata.annotations.clone().unwrap_or_default();
    // Nothing is applied or pruned without the hosting cluster's settings: the defaults would
    // reset the domain, replace Jobs and prune Routes. The ConfigMap's watch wakes every
    // ControlPlane once it is there (or fixed).
    let configured =
        settings_for(ctx).and_then(|settings| Ok((ctx.renderers.get(&settings)?, settings)));
    let (renderer, settings) = match configured {
        Ok(configured) => configured,
        Err(source) => {
            blocked(ctx, cp, source.reason(), chain(&source)).await?;
            return Err(Error::Configuration { name, source });
        }
    };
    let catalog = match ctx.renderers.catalog(&ctx.hooks) {
        Ok(catalog) => catalog,
        Err(err) => return blocked(ctx, cp, reason::RECONCILE_ERROR, err.to_string()).await,
    };
    if let Some(message) = foreign_restore_source(ctx, cp).await? {
        return not_rendered(ctx, cp, false, message).await;
    }
    let manifests = match desired::manifests(&renderer, &catalog, cp, &ctx.system_namespace) {
        Ok(manifests) => manifests,
        Err(err) => {
            let missing_hook = matches!(
                &err,
                RenderError::ControlPlane { source, .. } if matches!(**source, SetError::MissingHook { .. })
            );
            return not_rendered(ctx, cp, missing_hook, chain(&err)).await;
        }
    };
    let hash = set_hash(&manifests);
    let current = Members::of(&manifests);
    // Until pruned, the parent names both the old members and the new.
    let recorded = Members::recorded(&annotations).union(&current);
    let parent = ensure_parent(ctx, cp, &recorded).await?;

    let previous = ctx.record(&name);
    let now = (ctx.clock)();
    let resync = i64::try_from(ctx.options.resync.as_secs()).unwrap_or(i64::MAX);
    let verified_at = previous.as_ref().map_or(0, |p| p.verified_at);
    let trust = Trust {
        same_set: previous.as_ref().is_some_and(|p| p.hash == hash),
        verify_unwatched: now.saturating_sub(verified_at) >= resync,
    };
    let applied = apply::apply_set(ctx, &name, &manifests, previous.as_ref(), trust).await;
    ctx.metrics.count_objects("applied", applied.written.len());
    ctx.metrics.count_objects("unchanged", applied.unchanged);
    for replaced in &applied.replaced {
        ctx.metrics.count_objects("replaced", 1);
        events::normal(
            ctx,
            cp,
            replaced.replacement.reason(),
            &format!(
                "{} could not be changed in place and was created again",
                replaced.key
            ),
        )
        .await;
    }
    let incomplete = |objects| Record {
        hash: String::new(),
        objects,
        verified_at,
    };
    if !applied.failures.is_empty() {
        ctx.remember(&name, incomplete(applied.objects));
        let err = Error::Apply {
            name,
            source: ApplyFailures(applied.failures),
        };
        return failed(ctx, cp, reason::APPLY_FAILED, err).await;
    }
    if !trust.same_set || recorded != current {
        let wanted: HashSet<ObjectKey> = manifests.iter().map(Manifest::key).collect();
        // What may be deleted in the system namespace is what the control plane renders; a
        // cleanup render that fails leaves that smaller, never larger.
        let rendered =
            desired::deletable(&renderer, cp, &manifests).unwrap_or_else(|_| wanted.clone());
        let owner = Owner {
            control_plane: &name,
            system_namespace: &ctx.system_namespace,
            generated_secrets: facts(cp.spec.type_).map_or(&[], |f| f.generated_secrets),
            rendered: Some(&rendered),
        };
        let id = ownership::applyset_id(&name);
        match prune::prune(ctx, &id, &recorded, &wanted, &owner).await {
            Ok(pruned) => {
                ctx.metrics.count_objects("pruned", pruned.deleted.len());
                events::refused(ctx, cp, &pruned.refused).await;
            }
            Err(source) => {
                ctx.remember(&name, incomplete(applied.objects));
                let err = Error::Prune { name, source };
                return failed(ctx, cp, reason::PRUNE_FAILED, err).await;
            }
        }
        if recorded != current {
            // The old members are gone: the parent names only the current ones.
            ensure_parent(ctx, &parent, &current).await?;
        }
    }
    ctx.remember(
        &name,
        Record {
            hash,
            objects: applied.objects,
            verified_at: if trust.verify_unwatched {
                now
            } else {
                verified_at
            },
        },
    );

    let findings = readiness(ctx, cp, &settings, &manifests)
        .await
        .map_err(|source| Error::Readiness {
            name: name.clone(),
            source,
        })?;
    let is_ready = findings.ready.as_ref().is_some_and(|c| c.status);
    ctx.metrics.set_ready(&name, is_ready);
    report(ctx, cp, &findings).await?;
    Ok(Action::requeue(if is_ready {
        ctx.options.resync
    } else {
        ctx.options.not_ready_requeue
    }))
}

/// Status findings after a successful apply: secretRef, hooks, and Ready.
async fn readiness(
    ctx: &Context,
    cp: &ControlPlane,
    settings: &kflex_core::settings::Settings,
    manifests: &[Manifest],
) -> Result<Findings, ReadinessError> {
    let name = cp.metadata.name.clone().unwrap_or_default();
    let namespace = format!("{name}-system");
    let Some(type_facts) = facts(cp.spec.type_) else {
        return Err(ReadinessError::NoFacts(cp.spec.type_));
    };
    let secret = type_facts.kubeconfig;
    let secret_ref = SecretReference {
        namespace: namespace.clone(),
        name: secret.name.to_owned(),
        key: secret.key.to_owned(),
        in_cluster_key: secret.in_cluster_key.to_owned(),
    };
    let workload_ready = match type_facts.workload {
        None => true,
        Some(workload) => {
            let resource =
                ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", workload.kind));
            object_ready(&ctx.client, &resource, Some(&namespace), workload.name).await?
        }
    };
    let serving =
        workload_ready && api_serving(&ctx.client, ctx.probe.as_ref(), &namespace, &secret).await?;
    // Reachable from outside the way the exposure says (a Gateway accepted the route, the load
    // balancer has an address), checked once the API answers.
    let unexposed = if serving {
        exposure::problem(&ctx.client, settings, &namespace, manifests, &secret).await?
    } else {
        None
    };

    let wait = cp.spec.wait_for_post_create_hooks.unwrap_or(false);
    let mut hooks = BTreeMap::new();
    for hook in hook_names(cp) {
        let mut ready = true;
        if wait {
            // Objects ready by existing exist: they were just applied (and the controller may
            // not be allowed to read them, e.g. a Secret).
            for manifest in manifests.iter().filter(|m| {
                m.annotation(metadata::HOOK_ANNOTATION) == Some(hook.as_str())
                    && has_rule(m.group(), m.kind())
            }) {
                let resource = ctx
                    .resources
                    .resolve(manifest.api_version(), manifest.kind())
                    .await
                    .map_err(|source| ReadinessError::Discover {
                        api_version: manifest.api_version().to_owned(),
                        kind: manifest.kind().to_owned(),
                        source,
                    })?;
                if !object_ready(
                    &ctx.client,
                    &resource,
                    manifest.namespace(),
                    manifest.name(),
                )
                .await?
                {
                    ready = false;
                    break;
                }
            }
        }
        hooks.insert(hook, ready);
    }
    let completed = hooks.values().all(|ready| *ready);
    let ready = if !serving {
        let message = match type_facts.workload {
            Some(workload) if !workload_ready => {
                format!("{} {} is not ready", workload.kind, workload.name)
            }
            _ => format!(
                "the API does not answer through Secret {namespace}/{} key {}",
                secret.name, secret.in_cluster_key
            ),
        };
        Condition::new(READY, false, reason::UNAVAILABLE, message)
    } else if let Some(problem) = unexposed {
        Condition::new(READY, false, reason::UNAVAILABLE, problem)
    } else if wait && !completed {
        Condition::new(
            READY,
            false,
            "WaitingForPostCreateHooks",
            "Waiting for PostCreateHook completion",
        )
    } else {
        Condition::new(READY, true, reason::AVAILABLE, "")
    };
    Ok(Findings {
        synced: Some(Condition::new(SYNCED, true, reason::RECONCILE_SUCCESS, "")),
        ready: Some(ready),
        secret_ref: Some(secret_ref),
        hooks: Some(hooks),
        hooks_completed: Some(completed),
        observed: true,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn with_uses(single: Option<&str>, uses: &[String]) -> ControlPlane {
        let uses: Vec<_> = uses.iter().map(|name| json!({"hookName": name})).collect();
        let spec = serde_json::from_value(json!({
            "type": "k8s", "postCreateHook": single, "postCreateHooks": uses
        }))
        .expect("a spec");
        ControlPlane::new("cp1", spec)
    }

    fn secs(seconds: u64) -> Option<Duration> {
        Some(Duration::from_secs(seconds))
    }

    #[test]
    fn conflicts_are_retried_at_once_until_they_keep_coming() {
        let retries: Vec<_> = (1..=5).map(|n| retry_after(Class::Conflict, n)).collect();
        assert_eq!(retries, [secs(1), secs(1), secs(1), secs(40), secs(80)]);
    }

    #[test]
    fn a_forbidden_request_waits_longer_than_other_failures() {
        let forbidden: Vec<_> = (1..=5).map(|n| retry_after(Class::Forbidden, n)).collect();
        assert_eq!(
            forbidden,
            [secs(60), secs(120), secs(240), secs(300), secs(300)]
        );
        let other: Vec<_> = [1, 2, 3, 7, 40]
            .into_iter()
            .map(|n| retry_after(Class::Other, n))
            .collect();
        assert_eq!(other, [secs(5), secs(10), secs(20), secs(300), secs(300)]);
    }

    #[test]
    fn a_configuration_error_waits_for_the_configuration_to_change() {
        assert_eq!(retry_after(Class::Configuration, 1), None);
        assert_eq!(retry_after(Class::Configuration, 50), None);
    }

    #[test]
    fn hook_names_keep_the_first_use_of_each_in_order() {
        let uses = ["b", "a", "", "b", "c", "a"].map(str::to_owned);
        assert_eq!(hook_names(&with_uses(Some("a"), &uses)), ["a", "b", "c"]);
    }

    /// KubeFlex does not bound the list; de-duplicating it must not be quadratic (60,000 uses
    /// took 27 s that way).
    #[test]
    fn hook_names_of_a_huge_list_are_found_quickly() {
        let uses: Vec<String> = (0..100_000)
            .map(|i| format!("hook-{}", i % 60_000))
            .collect();
        let cp = with_uses(None, &uses);
        let started = std::time::Instant::now();
        let names = hook_names(&cp);
        let took = started.elapsed();
        assert_eq!(names.len(), 60_000);
        assert_eq!(names[59_999], "hook-59999");
        assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    }
}
