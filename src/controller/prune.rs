//! Removing what a control plane no longer renders: objects of its ApplySet (label
//! `applyset.kubernetes.io/part-of`) of the kinds it used to have, that the new set does not
//! hold. Nothing without that label is ever touched.

use std::collections::{BTreeSet, HashSet};

use anyhow::Context as _;
use kflex_core::manifest::{Manifest, ObjectKey};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::core::ApiResource;

use super::context::Context;
use super::ownership::{PART_OF, group_kind_of};

/// Deletes the members of ApplySet `id` of `group_kinds` that `current` does not hold; the
/// keys deleted.
pub async fn prune(
    ctx: &Context,
    id: &str,
    group_kinds: &BTreeSet<String>,
    current: &[Manifest],
) -> anyhow::Result<Vec<ObjectKey>> {
    let wanted: HashSet<ObjectKey> = current.iter().map(Manifest::key).collect();
    let selector = ListParams::default().labels(&format!("{PART_OF}={id}"));
    let mut deleted = Vec::new();
    for group_kind in group_kinds {
        let resource = match current.iter().find(|m| group_kind_of(m) == *group_kind) {
            Some(manifest) => {
                ctx.resources
                    .resolve(manifest.api_version(), manifest.kind())
                    .await?
            }
            None => ctx.resources.resolve_group_kind(group_kind).await?,
        };
        let all: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &resource);
        let members = all
            .list_metadata(&selector)
            .await
            .with_context(|| format!("listing the {} of ApplySet {id}", resource.plural))?;
        for member in members {
            let name = member.metadata.name.clone().unwrap_or_default();
            let namespace = member.metadata.namespace.clone();
            let key = ObjectKey {
                group: resource.group.clone(),
                kind: resource.kind.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
            };
            if wanted.contains(&key) {
                continue;
            }
            let api: Api<DynamicObject> = match &namespace {
                Some(namespace) => Api::namespaced_with(ctx.client.clone(), namespace, &resource),
                None => Api::all_with(ctx.client.clone(), &resource),
            };
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => deleted.push(key),
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(err) => return Err(anyhow::anyhow!("pruning {key}: {err}")),
            }
        }
    }
    Ok(deleted)
}

/// Deletes the cluster-scoped members of ApplySet `id` of `group_kinds` (at deletion: what the
/// garbage collector would otherwise remove later).
pub async fn delete_cluster_scoped(
    ctx: &Context,
    id: &str,
    group_kinds: &BTreeSet<String>,
) -> anyhow::Result<()> {
    let selector = ListParams::default().labels(&format!("{PART_OF}={id}"));
    for group_kind in group_kinds {
        let resource: ApiResource = ctx.resources.resolve_group_kind(group_kind).await?;
        let all: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &resource);
        let members = all
            .list_metadata(&selector)
            .await
            .with_context(|| format!("listing the {} of ApplySet {id}", resource.plural))?;
        for member in members
            .items
            .iter()
            .filter(|m| m.metadata.namespace.is_none())
        {
            let name = member.metadata.name.clone().unwrap_or_default();
            match all.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(err) => anyhow::bail!("deleting {} {name}: {err}", resource.kind),
            }
        }
    }
    Ok(())
}
