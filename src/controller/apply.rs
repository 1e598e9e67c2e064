//! Server-side apply of a rendered set, in install order, touching only what changed.
//!
//! Field manager `kflex`, conflicts forced (kflex sends only the fields it renders, so only
//! those change hands). An object is skipped when it is as applied (see `drift`). A Job whose
//! template changed cannot be updated: it is deleted and created again. A CustomResourceDefinition
//! is waited for until established, so the objects of its kind that follow can be applied.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use kflex_core::manifest::{Manifest, ObjectKey};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use serde_json::Value;

use super::caches::Cached;
use super::context::{Context, Record};
use super::drift::{contains, fingerprint};
use super::readiness::ready;

/// The field manager of everything the controller applies.
pub const FIELD_MANAGER: &str = "kflex";

/// What applying a set did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Objects written, in order.
    pub written: Vec<ObjectKey>,
    pub unchanged: usize,
    /// Jobs deleted and created again because their template changed.
    pub replaced_jobs: Vec<ObjectKey>,
    pub fingerprints: HashMap<ObjectKey, String>,
}

fn api_for(
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

/// Applies `manifests` (in order); `previous` is what was applied before, `hash` this set's.
pub async fn apply_set(
    ctx: &Context,
    manifests: &[Manifest],
    previous: Option<&Record>,
    hash: &str,
) -> anyhow::Result<Applied> {
    let same_set = previous.is_some_and(|record| record.hash == hash);
    let mut applied = Applied::default();
    for manifest in manifests {
        let key = manifest.key();
        let resource = ctx
            .resources
            .resolve(manifest.api_version(), manifest.kind())
            .await?;
        let api = api_for(&ctx.client, &resource, manifest.namespace());
        let desired = Value::Object(manifest.object().clone());
        let recorded = previous.and_then(|r| r.fingerprints.get(&key));
        let cached = ctx.caches.lookup(
            manifest.group(),
            manifest.kind(),
            manifest.namespace(),
            manifest.name(),
        );
        let decision = match (&cached, recorded) {
            (Cached::Present { fingerprint }, Some(recorded))
                if same_set && fingerprint == recorded =>
            {
                Decision::Keep(recorded.clone())
            }
            // A kind no cache watches: trust what was applied while the set is the same.
            (Cached::Unknown, Some(recorded)) if same_set => Decision::Keep(recorded.clone()),
            (Cached::Absent, _) => Decision::Write,
            _ => match api.get_opt(manifest.name()).await {
                Ok(Some(live)) => {
                    let live_value =
                        serde_json::to_value(&live).context("reading a live object")?;
                    if contains(&desired, &live_value) {
                        Decision::Keep(fingerprint(
                            live.metadata.generation,
                            live.metadata.resource_version.as_deref(),
                        ))
                    } else {
                        Decision::Write
                    }
                }
                // Absent, or not readable (a Secret the controller may only write): write.
                Ok(None) | Err(_) => Decision::Write,
            },
        };
        match decision {
            Decision::Keep(fingerprint) => {
                applied.unchanged += 1;
                applied.fingerprints.insert(key, fingerprint);
            }
            Decision::Write => {
                let (live, replaced) = apply_one(&api, manifest, &desired).await?;
                if replaced {
                    applied.replaced_jobs.push(key.clone());
                }
                if manifest.group() == "apiextensions.k8s.io"
                    && manifest.kind() == "CustomResourceDefinition"
                {
                    wait_established(&api, manifest.name()).await?;
                }
                applied.fingerprints.insert(
                    key.clone(),
                    fingerprint(
                        live.metadata.generation,
                        live.metadata.resource_version.as_deref(),
                    ),
                );
                applied.written.push(key);
            }
        }
    }
    Ok(applied)
}

fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

/// Applies one object; a Job whose template changed is replaced (`true`).
async fn apply_one(
    api: &Api<DynamicObject>,
    manifest: &Manifest,
    desired: &Value,
) -> anyhow::Result<(DynamicObject, bool)> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = manifest.name();
    match api.patch(name, &params, &Patch::Apply(desired)).await {
        Ok(live) => Ok((live, false)),
        Err(kube::Error::Api(status))
            if manifest.group() == "batch"
                && manifest.kind() == "Job"
                && status.code == 422
                && status.message.contains("immutable") =>
        {
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(err) => anyhow::bail!(
                    "deleting {} to replace it: {}",
                    manifest.key(),
                    describe(&err)
                ),
            }
            wait_gone(api, name)
                .await
                .with_context(|| format!("replacing {}", manifest.key()))?;
            let live = api
                .patch(name, &params, &Patch::Apply(desired))
                .await
                .map_err(|err| {
                    anyhow::anyhow!("creating {} again: {}", manifest.key(), describe(&err))
                })?;
            Ok((live, true))
        }
        Err(err) => Err(anyhow::anyhow!(
            "applying {} (from {}): {}",
            manifest.key(),
            manifest.source(),
            describe(&err)
        )),
    }
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
