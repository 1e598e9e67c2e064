//! Server-side apply of rendered manifests, as field manager [`FIELD_MANAGER`] with conflicts
//! forced (kflex sends only the fields it renders, so only those change hands). An object whose
//! change the API refuses as immutable is replaced where that loses nothing: a Job (its
//! template) and a RoleBinding or ClusterRoleBinding (its roleRef); never a StatefulSet, whose
//! volumes hold data. A CustomResourceDefinition is waited for until established, so objects of
//! its kind can follow it.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kflex_core::manifest::{Manifest, ObjectKey};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use super::drift::{contains, owns_unrendered};
use super::resources::Resources;
use super::{Error, FIELD_MANAGER, api_for, wait};

/// Why an object was deleted and created again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replacement {
    /// A Job whose template changed.
    Job,
    /// A RoleBinding or ClusterRoleBinding whose roleRef changed.
    Binding,
}

impl Replacement {
    /// The reason of the Event reporting it.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Job => "JobReplaced",
            Self::Binding => "BindingReplaced",
        }
    }

    /// The replacement that undoes the API's refusal `status` of a change to `manifest`, if
    /// kflex may replace that object.
    fn of(manifest: &Manifest, status: &kube::core::Status) -> Option<Self> {
        if status.code != 422 {
            return None;
        }
        let binding = manifest.is::<RoleBinding>() || manifest.is::<ClusterRoleBinding>();
        if manifest.is::<Job>() && status.message.contains("immutable") {
            Some(Self::Job)
        } else if binding && status.message.contains("roleRef") {
            Some(Self::Binding)
        } else {
            None
        }
    }
}

/// One object applied: as the API has it now, and whether it had to be replaced.
#[derive(Debug)]
pub struct Written {
    pub live: DynamicObject,
    pub replaced: Option<Replacement>,
}

/// Applies `manifest` through `api` (its kind's); replaces it when the API refuses the change in
/// place and kflex may; waits for a CustomResourceDefinition to be established.
pub async fn apply(
    client: &kube::Client,
    api: &Api<DynamicObject>,
    manifest: &Manifest,
) -> Result<Written, Error> {
    let written = write(api, manifest).await?;
    if manifest.is::<CustomResourceDefinition>() {
        wait::established(client, &manifest.key()).await?;
    }
    Ok(written)
}

async fn write(api: &Api<DynamicObject>, manifest: &Manifest) -> Result<Written, Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = manifest.name();
    let key = manifest.key();
    let desired = Value::Object(manifest.object().clone());
    let refusal = match api.patch(name, &params, &Patch::Apply(&desired)).await {
        Ok(live) => {
            return Ok(Written {
                live,
                replaced: None,
            });
        }
        Err(kube::Error::Api(status)) => status,
        Err(source) => return Err(apply_error(manifest, source)),
    };
    let Some(replacement) = Replacement::of(manifest, &refusal) else {
        return Err(apply_error(manifest, kube::Error::Api(refusal)));
    };
    match api.delete(name, &DeleteParams::background()).await {
        // An object in the answer is still there while the API finishes deleting it
        // (finalizers, dependents); a status means it is gone.
        Ok(deletion) => {
            if let Some(deleting) = deletion.left() {
                let uid = deleting.metadata.uid.unwrap_or_default();
                wait::gone(api, &key, &uid).await?;
            }
        }
        Err(kube::Error::Api(status)) if status.is_not_found() => {}
        Err(source) => return Err(Error::ReplaceDelete { key, source }),
    }
    let live = api
        .patch(name, &params, &Patch::Apply(&desired))
        .await
        .map_err(|source| Error::ReplaceCreate { key, source })?;
    Ok(Written {
        live,
        replaced: Some(replacement),
    })
}

fn apply_error(manifest: &Manifest, source: kube::Error) -> Error {
    let (key, origin) = (manifest.key(), manifest.source().to_string());
    let immutable = matches!(&source, kube::Error::Api(status) if status.code == 422);
    if immutable && manifest.is::<StatefulSet>() {
        Error::ApplyStatefulSet {
            key,
            origin,
            source,
        }
    } else {
        Error::Apply {
            key,
            origin,
            source,
        }
    }
}

/// Whether `live` already is what applying `manifest` would make it: it holds every rendered
/// field with the rendered value, and [`FIELD_MANAGER`] owns no field that is not rendered any
/// more (which an apply would remove).
pub fn in_sync(manifest: &Manifest, live: &DynamicObject) -> bool {
    let desired = Value::Object(manifest.object().clone());
    let Ok(live_value) = serde_json::to_value(live) else {
        return false;
    };
    contains(&desired, &live_value)
        && !owns_unrendered(
            &desired,
            live.metadata.managed_fields.as_deref(),
            FIELD_MANAGER,
        )
}

/// What [`apply_in_order`] did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Objects written, in order.
    pub written: Vec<ObjectKey>,
    /// Objects found as rendered, left alone.
    pub unchanged: Vec<ObjectKey>,
    /// Objects deleted and created again (also in `written`).
    pub replaced: Vec<(ObjectKey, Replacement)>,
}

/// Applies `manifests` in their order, writing only those not [`in_sync`]; stops at the first
/// failure (what follows may depend on it: a namespace, a CRD).
pub async fn apply_in_order(
    client: &kube::Client,
    resources: &Resources,
    manifests: &[Manifest],
) -> Result<Applied, Error> {
    let mut applied = Applied::default();
    for manifest in manifests {
        let key = manifest.key();
        let resource = resources
            .resolve(manifest.api_version(), manifest.kind())
            .await
            .map_err(|source| Error::Resolve {
                key: key.clone(),
                source: source.into(),
            })?;
        let api = api_for(client, &resource, manifest.namespace());
        let live = api
            .get_opt(manifest.name())
            .await
            .map_err(|source| Error::Read {
                key: key.clone(),
                source,
            })?;
        if live.as_ref().is_some_and(|live| in_sync(manifest, live)) {
            if manifest.is::<CustomResourceDefinition>() {
                wait::established(client, &key).await?;
            }
            applied.unchanged.push(key);
            continue;
        }
        let written = apply(client, &api, manifest).await?;
        if let Some(replacement) = written.replaced {
            applied.replaced.push((key.clone(), replacement));
        }
        applied.written.push(key);
    }
    Ok(applied)
}

/// What a server-side dry run says applying a manifest would make of its object.
#[derive(Debug)]
pub enum DryRun {
    /// Applied in place (created or changed): the object as it would be.
    Applied(DynamicObject),
    /// Created with everything it depends on (its namespace does not exist yet, so the API
    /// cannot dry-run it): the rendered object itself.
    Created(DynamicObject),
    /// Deleted and created again ([`Replacement`]): the rendered object itself.
    Replaced(DynamicObject, Replacement),
}

/// A server-side dry run of applying `manifest` through `api`; `exists`: its object exists.
pub async fn dry_run(
    api: &Api<DynamicObject>,
    manifest: &Manifest,
    exists: bool,
) -> Result<DryRun, Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    let desired = Value::Object(manifest.object().clone());
    let rendered = || serde_json::from_value::<DynamicObject>(desired.clone());
    // A manifest is a Kubernetes object by construction, so this happens only on a bug.
    let not_an_object = |err| Error::DryRun {
        key: manifest.key(),
        source: kube::Error::SerdeError(err),
    };
    match api
        .patch(manifest.name(), &params, &Patch::Apply(&desired))
        .await
    {
        Ok(live) => Ok(DryRun::Applied(live)),
        Err(kube::Error::Api(status)) if status.is_not_found() && !exists => {
            Ok(DryRun::Created(rendered().map_err(&not_an_object)?))
        }
        Err(kube::Error::Api(status)) if exists => match Replacement::of(manifest, &status) {
            Some(replacement) => Ok(DryRun::Replaced(
                rendered().map_err(&not_an_object)?,
                replacement,
            )),
            None => Err(Error::DryRun {
                key: manifest.key(),
                source: kube::Error::Api(status),
            }),
        },
        Err(source) => Err(Error::DryRun {
            key: manifest.key(),
            source,
        }),
    }
}
