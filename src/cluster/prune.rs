//! Finding and removing the members of a control plane's ApplySet (label
//! `applyset.kubernetes.io/part-of`) of the kinds its parent records. Nothing without that
//! label is ever touched, and nothing the parent's annotations merely claim: what is deleted
//! must belong to the control plane by the rules of [`super::trust`].
//!
//! Members are found without listing what the controller may not list: kinds the caller already
//! knows (the controller's metadata caches), Secrets from the names the parent records, other
//! kinds by a label-selected metadata LIST.

use std::collections::HashSet;

use kflex_core::manifest::ObjectKey;
use kflex_core::render::metadata::CONTROL_PLANE_LABEL;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};

use super::ownership::{Members, PART_OF};
use super::resources::Resources;
use super::trust::{self, Found, Owner, Refusal};
use super::{Error, api_for};

/// A member known without asking the API: its namespace and name, and the value of its
/// `kflex.kubestellar.org/control-plane` label.
pub type KnownMember = ((Option<String>, String), Option<String>);

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

/// The members of ApplySet `id` of the kinds (and Secrets) `recorded` names; `cached` answers
/// for the kinds already known without a request (`None`: list them).
pub async fn list_members(
    client: &kube::Client,
    resources: &Resources,
    id: &str,
    recorded: &Members,
    cached: impl Fn(&str, &str) -> Option<(ApiResource, Vec<KnownMember>)>,
) -> Result<Vec<Member>, Error> {
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
        let resolved = resources
            .resolve_group_kind(group_kind)
            .await
            .map_err(|source| Error::ResolveKind {
                group_kind: group_kind.clone(),
                source: source.into(),
            })?;
        let Some(resource) = resolved else {
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
            Err(source) => {
                return Err(Error::ListMembers {
                    plural: resource.plural.clone(),
                    id: id.to_owned(),
                    source,
                });
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

/// Deletes the object `key` of `resource` (already gone is fine).
pub async fn delete(
    client: &kube::Client,
    resource: &ApiResource,
    key: &ObjectKey,
) -> Result<(), Error> {
    let api = api_for(client, resource, key.namespace.as_deref());
    match api.delete(&key.name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(source) => Err(Error::Delete {
            key: key.clone(),
            source,
        }),
    }
}

/// What pruning did: the keys deleted, and the listed members it refused to delete.
#[derive(Debug, Default)]
pub struct Pruned {
    pub deleted: Vec<ObjectKey>,
    pub refused: Vec<Refusal>,
}

/// Deletes those of `members` (of ApplySet `id`) that `wanted` does not hold and that belong to
/// `owner`; the others are left alone and reported.
pub async fn prune(
    client: &kube::Client,
    id: &str,
    members: Vec<Member>,
    wanted: &HashSet<ObjectKey>,
    owner: &Owner<'_>,
) -> Result<Pruned, Error> {
    let mut pruned = Pruned::default();
    for member in members {
        if wanted.contains(&member.key) {
            continue;
        }
        if let Some(refusal) = trust::refusal(owner, &member.key, &member.found) {
            pruned.refused.push(refusal);
            continue;
        }
        delete(client, &member.resource, &member.key).await?;
        tracing::info!(applyset = id, object = %member.key, "pruned");
        pruned.deleted.push(member.key);
    }
    Ok(pruned)
}
