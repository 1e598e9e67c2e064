//! What the controller knows about applied objects without asking: metadata-only, label-selected
//! caches of the kinds control planes consist of (never a cluster-wide cache of Secrets or of
//! objects that are not kflex's).

use std::collections::HashMap;

use kube::api::{DynamicObject, PartialObjectMeta};
use kube::core::ApiResource;
use kube::runtime::reflector::{ObjectRef, Store};

use super::drift::fingerprint;

/// The kinds watched through metadata-only caches, as (apiVersion, kind). Secrets are not among
/// them: watching them needs the right to list every Secret's data.
pub const WATCHED_KINDS: [(&str, &str); 14] = [
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
];

/// The metadata of one kind's objects.
pub type MetaStore = Store<PartialObjectMeta<DynamicObject>>;

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
                fingerprint: fingerprint(
                    meta.metadata.generation,
                    meta.metadata.resource_version.as_deref(),
                ),
            },
            None => Cached::Absent,
        }
    }
}
