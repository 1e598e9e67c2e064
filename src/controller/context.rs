//! Everything a reconcile needs besides the ControlPlane: the API client, the caches the
//! watches fill, the renderer, what was applied last, and the controller's options.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kflex_core::api::PostCreateHook;
use kflex_core::manifest::ObjectKey;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use sha2::{Digest as _, Sha256};

use super::caches::{CacheError, MetaCaches};
use super::config::{CONFIG_MAP, RendererCache};
use super::metrics::Metrics;
use super::readiness::ApiProbe;
use crate::cluster::drift::RenderedDigest;
use crate::cluster::resources::Resources;

/// Tunables.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// How often an unchanged, Ready control plane is looked at again.
    pub resync: Duration,
    /// How soon a control plane that is not Ready yet is looked at again.
    pub not_ready_requeue: Duration,
    /// How long deletion waits for cleanup before giving up on it.
    pub cleanup_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(600),
            not_ready_requeue: Duration::from_secs(15),
            cleanup_timeout: Duration::from_secs(600),
        }
    }
}

/// The time as Unix seconds (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// An applied object's identity in a [`Record`]: a digest of its group, kind, namespace and
/// name — 16 bytes where the key took about 200, kept for every object of every control plane.
pub type ObjectId = [u8; 16];

/// The [`ObjectId`] of `key`.
pub fn object_id(key: &ObjectKey) -> ObjectId {
    let mut hasher = Sha256::new();
    for part in [
        key.group.as_str(),
        key.kind.as_str(),
        key.namespace.as_deref().unwrap_or_default(),
        key.name.as_str(),
    ] {
        // Lengths first, so that no two keys give the same bytes.
        hasher.update(part.len().to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut id = [0; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// What was applied of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedObject {
    /// Its fingerprint right after it was applied or found in sync.
    pub fingerprint: Box<str>,
    /// Its rendered digest (`drift::rendered_digest`) then: a rendering that changed since is
    /// applied, even if the live object still holds every field (a field kflex no longer
    /// renders is removed that way).
    pub rendered: RenderedDigest,
}

/// What was applied for one control plane: the rendered set's hash and each object's
/// fingerprint right after.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Empty when the last pass did not complete (something failed to apply or prune).
    pub hash: String,
    /// The objects applied or found in sync (objects that failed are not here).
    pub objects: HashMap<ObjectId, AppliedObject>,
    /// When objects of kinds no cache watches were last read (Unix seconds).
    pub verified_at: i64,
}

/// How long a reconcile waits for the caches' initial lists before giving up (and retrying).
const CACHE_WAIT: Duration = Duration::from_secs(30);

pub struct Context {
    pub client: kube::Client,
    pub resources: Resources,
    pub system_namespace: String,
    pub config: Store<ConfigMap>,
    pub hooks: Store<PostCreateHook>,
    pub caches: MetaCaches,
    pub renderers: RendererCache,
    pub records: Mutex<HashMap<String, Record>>,
    pub failures: Mutex<HashMap<String, u32>>,
    /// Per control plane, the problems last reported by Events that are not conditions (members
    /// the controller refused to delete), so each is reported once, not on every pass.
    pub reported: Mutex<HashMap<String, BTreeSet<String>>>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub probe: Arc<dyn ApiProbe>,
    pub options: Options,
    pub clock: Clock,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("system_namespace", &self.system_namespace)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// The data of the configuration ConfigMap, if it exists.
    pub fn config_data(&self) -> Option<std::collections::BTreeMap<String, String>> {
        let key = ObjectRef::new(CONFIG_MAP).within(&self.system_namespace);
        self.config
            .get(&key)
            .map(|cm| cm.data.clone().unwrap_or_default())
    }

    /// Waits until the configuration, the hooks and every member cache hold their initial
    /// lists: deciding on a cache still filling would apply defaults, miss hooks, and rewrite
    /// objects it has not seen yet.
    pub async fn caches_ready(&self) -> Result<(), CacheError> {
        let stopped = |cache: &str| CacheError::Stopped {
            cache: cache.to_owned(),
        };
        let all = async {
            self.config
                .wait_until_ready()
                .await
                .map_err(|_| stopped("the configuration"))?;
            self.hooks
                .wait_until_ready()
                .await
                .map_err(|_| stopped("PostCreateHooks"))?;
            self.caches.wait_until_ready().await
        };
        match tokio::time::timeout(CACHE_WAIT, all).await {
            Ok(done) => done,
            Err(_) => Err(CacheError::NotListed {
                seconds: CACHE_WAIT.as_secs(),
                pending: self.caches.pending(),
            }),
        }
    }

    pub fn record(&self, control_plane: &str) -> Option<Record> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(control_plane)
            .cloned()
    }

    pub fn remember(&self, control_plane: &str, record: Record) {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(control_plane.to_owned(), record);
    }

    pub fn forget(&self, control_plane: &str) {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(control_plane);
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(control_plane);
        self.reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(control_plane);
        self.metrics.forget(control_plane);
    }

    /// The failed reconciles of `control_plane` in a row so far.
    pub fn failures_in_a_row(&self, control_plane: &str) -> u32 {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(control_plane)
            .copied()
            .unwrap_or(0)
    }

    /// Counts a failed reconcile of `control_plane`; the number of failures in a row.
    pub fn failed(&self, control_plane: &str) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = failures.entry(control_plane.to_owned()).or_default();
        *count = count.saturating_add(1);
        *count
    }

    /// Records `problems` as what `control_plane` reports now; the ones not reported before.
    /// A problem that goes away and comes back is new again.
    pub fn newly_reported(
        &self,
        control_plane: &str,
        problems: BTreeSet<String>,
    ) -> BTreeSet<String> {
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        let before = reported
            .insert(control_plane.to_owned(), problems.clone())
            .unwrap_or_default();
        problems.difference(&before).cloned().collect()
    }

    pub fn succeeded(&self, control_plane: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(control_plane);
    }
}
