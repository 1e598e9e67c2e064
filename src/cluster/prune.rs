//! Finding and removing the members of a control plane's ApplySet (label
//! `applyset.kubernetes.io/part-of`) of the kinds its parent records. Nothing without that
//! label is ever touched, and nothing the parent's annotations merely claim: what is deleted
//! must belong to the control plane by the rules of [`super::trust`].
//!
//! Members are found without listing what the controller may not list: watched kinds from the
//! metadata caches, Secrets from the names the parent records, other kinds by a label-selected
//! metadata LIST.

use std::collections::HashSet;

use anyhow::Context as _;
use kflex_core::manifest::ObjectKey;
use kflex_core::render::metadata::CONTROL_PLANE_LABEL;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};

use super::apply::api_for;
use super::caches::CachedMember;
use super::context::Context;
use super::ownership::{Members, PART_OF};
use super::resources::Resources;
use super::trust::{self, Found, Owner, Refusal};

/// One member found in the cluster.
#[derive(Clone, Debug)]
pub struct Member {
    pub resource: ApiResource,
    pub key: ObjectKey,
    pub found: Found,
}

fn member(resource: &ApiResource, namespace: Option<String>, name: String, found: Found) -> Member {
    Member {
        key: ObjectKey {
            group: resource.group.clone(),
            kind: resource.kind.clone(),
            namespace,
            name,
        },
        resource: resource.clone(),
        found,
    }
}

/// The members of ApplySet `id` of the kinds (and Secrets) `recorded` names, watched kinds
/// from the controller's caches.
pub async fn members(ctx: &Context, id: &str, recorded: &Members) -> anyhow::Result<Vec<Member>> {
    list_members(&ctx.client, &ctx.resources, id, recorded, |group, kind| {
        ctx.caches.members(group, kind, id)
    })
    .await
}

/// The members of ApplySet `id` of the kinds (and Secrets) `recorded` names; `cached` answers
/// for the kinds already known without a request (`None`: list them).
pub async fn list_members(
    client: &kube::Client,
    resources: &Resources,
    id: &str,
    recorded: &Members,
    cached: impl Fn(&str, &str) -> Option<(ApiResource, Vec<CachedMember>)>,
) -> anyhow::Result<Vec<Member>> {
    let mut found = Vec::new();
    for group_kind in &recorded.kinds {
        let (kind, group) = group_kind.split_once('.').unwrap_or((group_kind, ""));
        if group.is_empty() && kind == "Secret" {
            let secrets = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Secret"));
            for entry in &recorded.secrets {
                if let Some((namespace, name)) = entry.split_once('/') {
                    found.push(member(
                        &secrets,
                        Some(namespace.to_owned()),
                        name.to_owned(),
                        Found::Named,
                    ));
                }
            }
            continue;
        }
        if let Some((resource, cached)) = cached(group, kind) {
            found.extend(
                cached
                    .into_iter()
                    .map(|((namespace, name), control_plane)| {
                        member(
                            &resource,
                            namespace,
                            name,
                            Found::Labelled { control_plane },
                        )
                    }),
            );
            continue;
        }
        let Some(resource) = resources.resolve_group_kind(group_kind).await? else {
            // The kind is not served any more, so none of its objects exist.
            continue;
        };
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let listed = match all
            .list_metadata(&ListParams::default().labels(&format!("{PART_OF}={id}")))
            .await
        {
            Ok(listed) => listed,
            // Not served (a kind known without discovery, such as TLSRoute, whose CRD was
            // removed): none of its objects exist.
            Err(kube::Error::Api(status)) if status.is_not_found() => continue,
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("listing the {} of ApplySet {id}", resource.plural));
            }
        };
        found.extend(listed.items.into_iter().map(|m| {
            let control_plane = m
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(CONTROL_PLANE_LABEL))
                .cloned();
            member(
                &resource,
                m.metadata.namespace,
                m.metadata.name.unwrap_or_default(),
                Found::Labelled { control_plane },
            )
        }));
    }
    Ok(found)
}

/// Deletes `member` (already gone is fine).
pub async fn delete(ctx: &Context, member: &Member) -> anyhow::Result<()> {
    let api = api_for(
        &ctx.client,
        &member.resource,
        member.key.namespace.as_deref(),
    );
    match api
        .delete(&member.key.name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(err) => Err(anyhow::anyhow!("deleting {}: {err}", member.key)),
    }
}

/// What pruning did: the keys deleted, and the listed members it refused to delete.
#[derive(Debug, Default)]
pub struct Pruned {
    pub deleted: Vec<ObjectKey>,
    pub refused: Vec<Refusal>,
}

/// Deletes the members of ApplySet `id` (of what `recorded` names) that `wanted` does not hold
/// and that belong to `owner`; the others are left alone and reported.
pub async fn prune(
    ctx: &Context,
    id: &str,
    recorded: &Members,
    wanted: &HashSet<ObjectKey>,
    owner: &Owner<'_>,
) -> anyhow::Result<Pruned> {
    let mut pruned = Pruned::default();
    for member in members(ctx, id, recorded).await? {
        if wanted.contains(&member.key) {
            continue;
        }
        if let Some(refusal) = trust::refusal(owner, &member.key, &member.found) {
            pruned.refused.push(refusal);
            continue;
        }
        delete(ctx, &member)
            .await
            .with_context(|| format!("pruning {}", member.key))?;
        tracing::info!(applyset = id, object = %member.key, "pruned");
        pruned.deleted.push(member.key);
    }
    Ok(pruned)
}
