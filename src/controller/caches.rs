//! What the controller knows about applied objects without asking: metadata-only, label-selected
//! caches of the kinds control planes consist of (never a cluster-wide cache of Secrets or of
//! objects that are not kflex's). Each entry is reduced to what the controller uses — its
//! fingerprint, its control plane and its ApplySet — to keep memory flat.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use kflex_core::render::metadata::CONTROL_PLANE_LABEL;
use kube::api::{DynamicObject, PartialObjectMeta};
use kube::core::ApiResource;
use tokio::sync::watch;

use crate::cluster::drift::fingerprint;
use crate::cluster::ownership::PART_OF;

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

/// Where an object is: its namespace (none when cluster-scoped) and its name.
pub type Located = (Option<String>, String);

/// A cached member of an ApplySet: where it is, and the value of its
/// `kflex.kubestellar.org/control-plane` label.
pub type CachedMember = (Located, Option<String>);

/// What the controller reads of a watched object, and all a cache keeps of it: a few hundred
/// bytes, where kube-runtime's store kept a whole `ObjectMeta` (empty label and annotation maps
/// alone take a kilobyte) and a copy of the kind's `ApiResource` in every key — 28 KiB per k8s
/// control plane, 280 MiB at ten thousand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub fingerprint: Box<str>,
    /// Its `kflex.kubestellar.org/control-plane` label.
    pub control_plane: Option<Box<str>>,
    /// Its ApplySet (`applyset.kubernetes.io/part-of`).
    pub part_of: Option<Box<str>>,
}

impl Entry {
    pub fn of(meta: &PartialObjectMeta<DynamicObject>) -> Self {
        let label = |key: &str| {
            meta.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(key))
                .map(|v| v.as_str().into())
        };
        Self {
            fingerprint: fingerprint(&meta.metadata).into(),
            control_plane: label(CONTROL_PLANE_LABEL),
            part_of: label(PART_OF),
        }
    }
}

/// A kind's entries, and where each ApplySet's are: pruning lists a control plane's members once
/// per pass, which must not mean going over every control plane's objects (that made creating
/// ten thousand control planes quadratic).
#[derive(Debug, Default)]
struct Entries {
    by_place: HashMap<Arc<Located>, Entry>,
    by_set: HashMap<Box<str>, HashSet<Arc<Located>>>,
}

impl Entries {
    fn insert(&mut self, at: Located, entry: Entry) -> Option<Entry> {
        let before = self.remove(&at);
        let at = Arc::new(at);
        if let Some(set) = &entry.part_of {
            self.by_set
                .entry(set.clone())
                .or_default()
                .insert(at.clone());
        }
        self.by_place.insert(at, entry);
        before
    }

    fn remove(&mut self, at: &Located) -> Option<Entry> {
        let (at, entry) = self.by_place.remove_entry(at)?;
        if let Some(set) = &entry.part_of
            && let Some(members) = self.by_set.get_mut(set)
        {
            members.remove(&at);
            if members.is_empty() {
                self.by_set.remove(set);
            }
        }
        Some(entry)
    }
}

#[derive(Debug)]
struct KindState {
    entries: RwLock<Entries>,
    /// True once the initial list is in.
    listed: watch::Sender<bool>,
}

/// The cached objects of one kind, filled by the kind's watch (`watches::members`).
#[derive(Clone, Debug)]
pub struct KindCache {
    state: Arc<KindState>,
}

impl Default for KindCache {
    fn default() -> Self {
        Self {
            state: Arc::new(KindState {
                entries: RwLock::default(),
                listed: watch::Sender::new(false),
            }),
        }
    }
}

impl KindCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.state.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.state
            .entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, at: &Located) -> Option<Entry> {
        self.read().by_place.get(at).cloned()
    }

    /// Stores `entry` at `at`; what was there.
    pub fn insert(&self, at: Located, entry: Entry) -> Option<Entry> {
        self.write().insert(at, entry)
    }

    pub fn remove(&self, at: &Located) -> Option<Entry> {
        self.write().remove(at)
    }

    /// Replaces everything with `entries` (a completed list); the places no longer there.
    pub fn replace(&self, entries: HashMap<Located, Entry>) -> Vec<(Located, Entry)> {
        let mut fresh = Entries::default();
        for (at, entry) in entries {
            fresh.insert(at, entry);
        }
        let old = std::mem::replace(&mut *self.write(), fresh);
        self.state.listed.send_replace(true);
        let current = self.read();
        old.by_place
            .into_iter()
            .filter(|(at, _)| !current.by_place.contains_key(at.as_ref()))
            .map(|(at, entry)| (Arc::unwrap_or_clone(at), entry))
            .collect()
    }

    pub fn is_listed(&self) -> bool {
        *self.state.listed.borrow()
    }

    /// Where the members of ApplySet `id` are, with their control-plane label.
    fn members(&self, id: &str) -> Vec<CachedMember> {
        let entries = self.read();
        let Some(members) = entries.by_set.get(id) else {
            return Vec::new();
        };
        members
            .iter()
            .filter_map(|at| {
                let entry = entries.by_place.get(at.as_ref())?;
                Some((
                    at.as_ref().clone(),
                    entry.control_plane.as_deref().map(str::to_owned),
                ))
            })
            .collect()
    }
}

/// One metadata cache per watched kind, keyed by (group, kind).
/// A reconcile cannot trust the caches: deciding on one still filling would apply defaults,
/// miss hooks, and rewrite objects it has not seen yet.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("the cache of {cache} stopped")]
    Stopped { cache: String },
    #[error(
        "the caches have not listed after {seconds}s (still listing: {}); nothing is applied \
         from incomplete caches — can the controller list and watch these kinds?",
        pending.join(", ")
    )]
    NotListed { seconds: u64, pending: Vec<String> },
}

#[derive(Clone, Default)]
pub struct MetaCaches {
    stores: HashMap<(String, String), (ApiResource, KindCache)>,
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
    pub fn insert(&mut self, resource: ApiResource, cache: KindCache) {
        self.stores.insert(
            (resource.group.clone(), resource.kind.clone()),
            (resource, cache),
        );
    }

    /// The cached state of object `name` (in `namespace`) of `group`/`kind`.
    pub fn lookup(&self, group: &str, kind: &str, namespace: Option<&str>, name: &str) -> Cached {
        let Some((_, cache)) = self.stores.get(&(group.to_owned(), kind.to_owned())) else {
            return Cached::Unknown;
        };
        match cache.get(&(namespace.map(str::to_owned), name.to_owned())) {
            Some(entry) => Cached::Present {
                fingerprint: entry.fingerprint.into(),
                control_plane: entry.control_plane.map(Into::into),
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
        let (resource, cache) = self.stores.get(&(group.to_owned(), kind.to_owned()))?;
        Some((resource.clone(), cache.members(id)))
    }

    /// Waits until every cache holds its initial list; the first one that stopped on error.
    pub async fn wait_until_ready(&self) -> Result<(), CacheError> {
        for ((group, kind), (_, cache)) in &self.stores {
            let mut listed = cache.state.listed.subscribe();
            if listed.wait_for(|listed| *listed).await.is_err() {
                return Err(CacheError::Stopped {
                    cache: format!("{kind}.{group}"),
                });
            }
        }
        Ok(())
    }

    /// The kinds whose cache has not listed yet.
    pub fn pending(&self) -> Vec<String> {
        self.stores
            .iter()
            .filter(|(_, (_, cache))| !cache.is_listed())
            .map(|((group, kind), _)| format!("{kind}.{group}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_entry_keeps_only_what_the_controller_reads() {
        let meta: PartialObjectMeta<DynamicObject> = serde_json::from_value(serde_json::json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": "x", "namespace": "cp1-system", "generation": 2, "resourceVersion": "9",
                         "labels": {CONTROL_PLANE_LABEL: "cp1", PART_OF: "applyset-a-v1", "other": "y"},
                         "annotations": {"big": "z".repeat(4096)},
                         "managedFields": [{"manager": "kflex"}]}
        }))
        .expect("metadata");
        let entry = Entry::of(&meta);
        assert_eq!(
            entry,
            Entry {
                fingerprint: fingerprint(&meta.metadata).into(),
                control_plane: Some("cp1".into()),
                part_of: Some("applyset-a-v1".into()),
            }
        );
        assert!(entry.fingerprint.starts_with("g2-"), "{entry:?}");
    }
}
