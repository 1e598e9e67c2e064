//! What the controller knows about applied objects without asking: metadata-only, label-selected
//! caches of the kinds control planes consist of (never a cluster-wide cache of Secrets or of
//! objects that are not kflex's). Each entry is reduced to what the controller uses — its
//! fingerprint, its control plane and its ApplySet — to keep memory flat.

use std::collections::{BTreeMap, HashMap};

use futures::FutureExt as _;
use kflex_core::render::metadata::CONTROL_PLANE_LABEL;
use kube::api::{DynamicObject, PartialObjectMeta};
use kube::core::ApiResource;
use kube::runtime::reflector::{ObjectRef, Store};

use super::drift::fingerprint;
use super::ownership::PART_OF;

/// The kinds watched through metadata-only caches, as (apiVersion, kind). Secrets are not among
/// them: watching them needs the right to list every Secret's data.
pub const WATCHED_KINDS: [(&str, &str); 15] = [
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("policy/v1", "PodDisruptionBudget"),
];

/// Where a cached entry keeps its fingerprint (in memory only; never written).
const FINGERPRINT: &str = "kflex.kubestellar.org/fingerprint";

/// Where an object is: its namespace (none when cluster-scoped) and its name.
pub type Located = (Option<String>, String);

/// A cached member of an ApplySet: where it is, and the value of its
/// `kflex.kubestellar.org/control-plane` label.
pub type CachedMember = (Located, Option<String>);

/// The metadata of one kind's objects.
pub type MetaStore = Store<PartialObjectMeta<DynamicObject>>;

/// Reduces a watched object's metadata to its fingerprint and the two labels the controller
/// reads (its control plane, its ApplySet).
pub fn reduce(meta: &mut PartialObjectMeta<DynamicObject>) {
    let metadata = &mut meta.metadata;
    let print = fingerprint(metadata);
    metadata.annotations = Some(BTreeMap::from([(FINGERPRINT.to_owned(), print)]));
    if let Some(labels) = metadata.labels.as_mut() {
        labels.retain(|key, _| key == CONTROL_PLANE_LABEL || key == PART_OF);
    }
    metadata.managed_fields = None;
    metadata.owner_references = None;
}

/// One metadata cache per watched kind, keyed by (group, kind).
#[derive(Clone, Default)]
pub struct MetaCaches {
    stores: HashMap<(String, String), (ApiResource, MetaStore)>,
}

impl std::fmt::Debug for MetaCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaCaches")
            .field("kinds", &self.stores.len())
            .finish()
    }
}

/// What a cache says about one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cached {
    /// The kind is not cached: ask the API.
    Unknown,
    Absent,
    Present {
        fingerprint: String,
        /// The control plane it is labelled with.
        control_plane: Option<String>,
    },
}

impl MetaCaches {
    pub fn insert(&mut self, resource: ApiResource, store: MetaStore) {
        self.stores.insert(
            (resource.group.clone(), resource.kind.clone()),
            (resource, store),
        );
    }

    /// The cached state of object `name` (in `namespace`) of `group`/`kind`.
    pub fn lookup(&self, group: &str, kind: &str, namespace: Option<&str>, name: &str) -> Cached {
        let Some((resource, store)) = self.stores.get(&(group.to_owned(), kind.to_owned())) else {
            return Cached::Unknown;
        };
        let mut key = ObjectRef::new_with(name, resource.clone());
        if let Some(namespace) = namespace {
            key = key.within(namespace);
        }
        match store.get(&key) {
            Some(meta) => Cached::Present {
                fingerprint: meta
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(FINGERPRINT))
                    .cloned()
                    .unwrap_or_else(|| fingerprint(&meta.metadata)),
                control_plane: meta
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(CONTROL_PLANE_LABEL))
                    .cloned(),
            },
            None => Cached::Absent,
        }
    }

    /// Where every cached member of ApplySet `id` of `group`/`kind` is, with the value of its
    /// `kflex.kubestellar.org/control-plane` label; `None` when the kind is not cached.
    pub fn members(
        &self,
        group: &str,
        kind: &str,
        id: &str,
    ) -> Option<(ApiResource, Vec<CachedMember>)> {
        let (resource, store) = self.stores.get(&(group.to_owned(), kind.to_owned()))?;
        let members = store
            .state()
            .iter()
            .filter(|meta| {
                meta.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(PART_OF))
                    .is_some_and(|part_of| part_of == id)
            })
            .map(|meta| {
                let located = (
                    meta.metadata.namespace.clone(),
                    meta.metadata.name.clone().unwrap_or_default(),
                );
                let control_plane = meta
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(CONTROL_PLANE_LABEL))
                    .cloned();
                (located, control_plane)
            })
            .collect();
        Some((resource.clone(), members))
    }

    /// Waits until every cache holds its initial list; the first kind still listing on error.
    pub async fn wait_until_ready(&self) -> Result<(), String> {
        for ((group, kind), (_, store)) in &self.stores {
            if store.wait_until_ready().await.is_err() {
                return Err(format!("the cache of {kind}.{group} stopped"));
            }
        }
        Ok(())
    }

    /// The kinds whose cache has not listed yet.
    pub fn pending(&self) -> Vec<String> {
        self.stores
            .iter()
            .filter(|(_, (_, store))| store.wait_until_ready().now_or_never().is_none())
            .map(|((group, kind), _)| format!("{kind}.{group}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_entry_keeps_only_what_the_controller_reads() {
        let mut meta: PartialObjectMeta<DynamicObject> = serde_json::from_value(serde_json::json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": "x", "namespace": "cp1-system", "generation": 2, "resourceVersion": "9",
                         "labels": {CONTROL_PLANE_LABEL: "cp1", PART_OF: "applyset-a-v1", "other": "y"},
                         "annotations": {"big": "z".repeat(4096)},
                         "managedFields": [{"manager": "kflex"}]}
        }))
        .expect("metadata");
        let before = fingerprint(&meta.metadata);
        reduce(&mut meta);
        let labels = meta.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.len(), 2, "{labels:?}");
        assert_eq!(
            meta.metadata.annotations,
            Some(BTreeMap::from([(FINGERPRINT.to_owned(), before)]))
        );
        assert!(meta.metadata.managed_fields.is_none());
    }
}
