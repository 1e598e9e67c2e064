//! Server-side apply of a rendered set, in install order, touching only what changed.
//!
//! Field manager `kflex`, conflicts forced (kflex sends only the fields it renders, so only
//! those change hands). An object is skipped when it is as applied (see `drift`). An object
//! whose change the API refuses as immutable is replaced where that loses nothing: a Job (its
//! template) and a RoleBinding or ClusterRoleBinding (its roleRef). A CustomResourceDefinition
//! is waited for until established, so the objects of its kind that follow can be applied. One
//! object failing does not stop the others; every failure is reported.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use std::collections::HashMap;
use std::time::Duration;

use kflex_core::manifest::{Manifest, ObjectKey};
use kflex_core::render::metadata::CONTROL_PLANE_LABEL;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use serde_json::Value;

use super::caches::Cached;
use super::context::{AppliedObject, Context, ObjectId, Record, object_id};
use super::drift::{contains, fingerprint, owns_unrendered, rendered_digest};
use super::readiness::ready;

/// The field manager of everything the controller applies.
pub const FIELD_MANAGER: &str = "kflex";

/// An object deleted and created again because the API refused to change it in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replaced {
    pub key: ObjectKey,
    /// The Event reason reporting it: `JobReplaced` or `BindingReplaced`.
    pub reason: &'static str,
}

/// What applying a set did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Objects written, in order.
    pub written: Vec<ObjectKey>,
    pub unchanged: usize,
    pub replaced: Vec<Replaced>,
    /// Each object applied or found in sync, as it is after this pass (objects that failed
    /// are not here).
    pub objects: HashMap<ObjectId, AppliedObject>,
    /// One line per object that could not be applied.
    pub failures: Vec<String>,
}

/// How much to trust what was recorded.
#[derive(Clone, Copy, Debug)]
pub struct Trust {
    /// The rendered set is the one recorded.
    pub same_set: bool,
    /// Read objects of kinds no cache watches, even when the set is the same (the periodic
    /// check that finds them edited or deleted).
    pub verify_unwatched: bool,
}

pub fn api_for(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

enum Decision {
    Keep(String),
    Write,
}

/// Applies `manifests` of control plane `control_plane` (in order); `previous` is what was
/// applied before.
pub async fn apply_set(
    ctx: &Context,
    control_plane: &str,
    manifests: &[Manifest],
    previous: Option<&Record>,
    trust: Trust,
) -> Applied {
    let mut applied = Applied::default();
    for manifest in manifests {
        let key = manifest.key();
        let resource = match ctx
            .resources
            .resolve(manifest.api_version(), manifest.kind())
            .await
        {
            Ok(resource) => resource,
            Err(err) => {
                applied.failures.push(format!("{key}: {err:#}"));
                continue;
            }
        };
        let api = api_for(&ctx.client, &resource, manifest.namespace());
        let id = object_id(&key);
        let before = previous.and_then(|r| r.objects.get(&id));
        let recorded = before.map(|b| b.fingerprint.as_ref());
        let digest = rendered_digest(&Value::Object(manifest.object().clone()));
        let rendering_changed = before.is_some_and(|before| before.rendered != digest);
        let decision = decide(
            ctx,
            control_plane,
            manifest,
            &api,
            recorded,
            Trust {
                same_set: trust.same_set && !rendering_changed,
                ..trust
            },
            rendering_changed,
        )
        .await;
        match decision {
            Ok(Decision::Keep(fingerprint)) => {
                applied.unchanged += 1;
                applied.objects.insert(
                    id,
                    AppliedObject {
                        fingerprint: fingerprint.into(),
                        rendered: digest,
                    },
                );
            }
            Ok(Decision::Write) => match write_and_wait(&api, manifest).await {
                Ok((live, replaced)) => {
                    tracing::info!(%control_plane, object = %key, replaced = replaced.is_some(), "applied");
                    if let Some(reason) = replaced {
                        applied.replaced.push(Replaced {
                            key: key.clone(),
                            reason,
                        });
                    }
                    applied.objects.insert(
                        id,
                        AppliedObject {
                            fingerprint: fingerprint(&live.metadata).into(),
                            rendered: digest,
                        },
                    );
                    applied.written.push(key);
                }
                Err(err) => applied.failures.push(format!("{err:#}")),
            },
            Err(err) => applied.failures.push(err),
        }
    }
    applied
}

fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

fn taken(key: &ObjectKey, other: &str) -> String {
    format!(
        "{key} belongs to ControlPlane {other}; two control planes cannot share an object (rename it, e.g. with {{{{.ControlPlaneName}}}})"
    )
}

/// Whether `manifest` must be written, from the cache, the record and (when those do not
/// settle it) the live object; `rendering_changed`: it is rendered otherwise than when it was
/// last applied, so it is written (once it is known to be this control plane's).
async fn decide(
    ctx: &Context,
    control_plane: &str,
    manifest: &Manifest,
    api: &Api<DynamicObject>,
    recorded: Option<&str>,
    trust: Trust,
    rendering_changed: bool,
) -> Result<Decision, String> {
    let key = manifest.key();
    let cached = ctx.caches.lookup(
        manifest.group(),
        manifest.kind(),
        manifest.namespace(),
        manifest.name(),
    );
    match (&cached, recorded) {
        (
            Cached::Present {
                control_plane: Some(other),
                ..
            },
            _,
        ) if other != control_plane => return Err(taken(&key, other)),
        (Cached::Present { fingerprint, .. }, Some(recorded))
            if trust.same_set && fingerprint.as_str() == recorded =>
        {
            return Ok(Decision::Keep(recorded.to_owned()));
        }
        (Cached::Unknown, Some(recorded)) if trust.same_set && !trust.verify_unwatched => {
            return Ok(Decision::Keep(recorded.to_owned()));
        }
        // Never applied, and the cache (complete before any reconcile) has not seen it.
        (Cached::Absent, None) => return Ok(Decision::Write),
        // Otherwise read: the cache may not have caught up with the controller's own write.
        _ => {}
    }
    match api.get_opt(manifest.name()).await {
        Ok(Some(live)) => {
            let owner = live
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(CONTROL_PLANE_LABEL));
            if let Some(other) = owner.filter(|other| *other != control_plane) {
                return Err(taken(&key, other));
            }
            let live_value = serde_json::to_value(&live).map_err(|e| format!("{key}: {e}"))?;
            let desired = Value::Object(manifest.object().clone());
            let in_sync = !rendering_changed
                && contains(&desired, &live_value)
                && !owns_unrendered(
                    &desired,
                    live.metadata.managed_fields.as_deref(),
                    FIELD_MANAGER,
                );
            Ok(if in_sync {
                Decision::Keep(fingerprint(&live.metadata))
            } else {
                Decision::Write
            })
        }
        Ok(None) => Ok(Decision::Write),
        // A Secret the controller may write but not read: trust the record while it holds.
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(match recorded {
            Some(recorded) if trust.same_set => Decision::Keep(recorded.to_owned()),
            _ => Decision::Write,
        }),
        Err(err) => Err(format!("reading {key}: {}", describe(&err))),
    }
}

/// Writes `manifest`; a CustomResourceDefinition is then waited for until established.
async fn write_and_wait(
    api: &Api<DynamicObject>,
    manifest: &Manifest,
) -> anyhow::Result<(DynamicObject, Option<&'static str>)> {
    let written = write(api, manifest).await?;
    if manifest.is::<CustomResourceDefinition>() {
        wait_established(api, manifest.name()).await?;
    }
    Ok(written)
}

/// Why the API refused a change in place that kflex may undo by replacing the object: the
/// Event reason, or `None` when the object must not be replaced.
fn replacement(manifest: &Manifest, status: &kube::core::Status) -> Option<&'static str> {
    if status.code != 422 {
        return None;
    }
    match (manifest.group(), manifest.kind()) {
        ("batch", "Job") if status.message.contains("immutable") => Some("JobReplaced"),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding")
            if status.message.contains("roleRef") =>
        {
            Some("BindingReplaced")
        }
        _ => None,
    }
}

/// Applies one object; one the API refuses to change in place is replaced where allowed (the
/// Event reason).
async fn write(
    api: &Api<DynamicObject>,
    manifest: &Manifest,
) -> anyhow::Result<(DynamicObject, Option<&'static str>)> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = manifest.name();
    let key = manifest.key();
    let desired = Value::Object(manifest.object().clone());
    let status = match api.patch(name, &params, &Patch::Apply(&desired)).await {
        Ok(live) => return Ok((live, None)),
        Err(kube::Error::Api(status)) => status,
        Err(err) => anyhow::bail!(
            "applying {key} (from {}): {}",
            manifest.source(),
            describe(&err)
        ),
    };
    let Some(reason) = replacement(manifest, &status) else {
        let hint = if manifest.is::<k8s_openapi::api::apps::v1::StatefulSet>() && status.code == 422
        {
            "; kflex does not replace StatefulSets (their volumes hold data): to apply this \
             change, delete it with `kubectl delete --cascade=orphan` and kflex creates it again"
        } else {
            ""
        };
        anyhow::bail!(
            "applying {key} (from {}): {} ({}){hint}",
            manifest.source(),
            status.message,
            status.code
        );
    };
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.is_not_found() => {}
        Err(err) => anyhow::bail!("deleting {key} to replace it: {}", describe(&err)),
    }
    wait_gone(api, name)
        .await
        .map_err(|err| anyhow::anyhow!("replacing {key}: {err:#}"))?;
    let live = api
        .patch(name, &params, &Patch::Apply(&desired))
        .await
        .map_err(|err| anyhow::anyhow!("creating {key} again: {}", describe(&err)))?;
    Ok((live, Some(reason)))
}

const POLL: Duration = Duration::from_millis(250);
const WAIT: Duration = Duration::from_secs(30);

async fn wait_gone(api: &Api<DynamicObject>, name: &str) -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    loop {
        if api
            .get_opt(name)
            .await
            .map_err(|e| anyhow::anyhow!(describe(&e)))?
            .is_none()
        {
            return Ok(());
        }
        if started.elapsed() > WAIT {
            anyhow::bail!("{name} is still there after {}s", WAIT.as_secs());
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn wait_established(api: &Api<DynamicObject>, name: &str) -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    loop {
        let crd = api
            .get_opt(name)
            .await
            .map_err(|e| anyhow::anyhow!(describe(&e)))?;
        if crd.is_some_and(|crd| {
            ready(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                &crd.data,
            )
        }) {
            return Ok(());
        }
        if started.elapsed() > WAIT {
            anyhow::bail!(
                "CustomResourceDefinition {name} is not established after {}s",
                WAIT.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
