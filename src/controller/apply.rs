//! Which objects of a rendered set the controller writes, in install order: only those not as
//! applied, decided from its caches and records without a read where they settle it (see
//! `drift`). The writes themselves (server-side apply, replacement of what the API cannot
//! change in place, the wait for CRDs) are `cluster::apply`'s. One object failing does not stop
//! the others; every failure is reported.

use std::collections::HashMap;

use kflex_core::manifest::{Manifest, ObjectKey};
use kflex_core::render::metadata::CONTROL_PLANE_LABEL;
use kube::api::{Api, DynamicObject};
use serde_json::Value;

use super::caches::Cached;
use super::context::{AppliedObject, Context, ObjectId, Record, object_id};
use crate::cluster::apply::{Replacement, in_sync};
use crate::cluster::drift::{fingerprint, rendered_digest};
use crate::cluster::{self, api_for};

/// An object deleted and created again because the API refused to change it in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replaced {
    pub key: ObjectKey,
    pub replacement: Replacement,
}

/// Why one object of the set was not applied.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(
        "{key} belongs to ControlPlane {owner}; two control planes cannot share an object (rename \
         it, e.g. with {{{{.ControlPlaneName}}}})"
    )]
    Taken { key: ObjectKey, owner: String },
    #[error(transparent)]
    Write(#[from] cluster::Error),
}

impl Failure {
    /// The failure and its causes on one line, for a condition.
    pub fn describe(&self) -> String {
        cluster::error::chain(self)
    }
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
    /// Each object that could not be applied, and why.
    pub failures: Vec<Failure>,
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
            Err(source) => {
                applied
                    .failures
                    .push(Failure::Write(cluster::Error::Resolve {
                        key,
                        source: source.into(),
                    }));
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
            Ok(Decision::Write) => match cluster::apply::apply(&ctx.client, &api, manifest).await {
                Ok(written) => {
                    tracing::info!(%control_plane, object = %key, replaced = written.replaced.is_some(), "applied");
                    if let Some(replacement) = written.replaced {
                        applied.replaced.push(Replaced {
                            key: key.clone(),
                            replacement,
                        });
                    }
                    applied.objects.insert(
                        id,
                        AppliedObject {
                            fingerprint: fingerprint(&written.live.metadata).into(),
                            rendered: digest,
                        },
                    );
                    applied.written.push(key);
                }
                Err(err) => applied.failures.push(err.into()),
            },
            Err(err) => applied.failures.push(err),
        }
    }
    applied
}

fn taken(key: ObjectKey, owner: &str) -> Failure {
    Failure::Taken {
        key,
        owner: owner.to_owned(),
    }
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
) -> Result<Decision, Failure> {
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
        ) if other != control_plane => return Err(taken(key, other)),
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
                return Err(taken(key, other));
            }
            Ok(if !rendering_changed && in_sync(manifest, &live) {
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
        Err(source) => Err(cluster::Error::Read { key, source }.into()),
    }
}
