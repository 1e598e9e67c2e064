//! Prometheus metrics: reconciles, errors, durations, the reconcile queue's depth, applied
//! objects, readiness per control plane.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

/// The operation a failed reconcile failed at (`error::Error::label`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControlPlaneLabel {
    pub control_plane: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub action: String,
}

/// The controller's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<ResultLabel, Counter>,
    pub reconcile_errors: Family<ErrorLabel, Counter>,
    pub reconcile_seconds: Histogram,
    pub queue_depth: Gauge,
    /// The ControlPlanes woken by a change whose reconcile has not started yet (what
    /// `queue_depth` counts): kube-runtime's queue holds one request per object, and so does
    /// this set.
    waiting: Mutex<HashSet<String>>,
    /// Every reconcile, for [`Metrics::reconciles_counted`] (not exported: the sum of
    /// `reconciles`).
    passes: Counter,
    pub objects: Family<ActionLabel, Counter>,
    pub ready: Family<ControlPlaneLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kflex");
        let reconciles = Family::<ResultLabel, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles of ControlPlanes, by result (ok, error, paused, deleted)",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<ErrorLabel, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed reconciles of ControlPlanes, by the operation that failed (caches, \
             read_control_plane, configuration, patch_parent, apply, prune, readiness, \
             patch_status, release_finalizer)",
            reconcile_errors.clone(),
        );
        let reconcile_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "reconcile_duration_seconds",
            "How long a reconcile took",
            reconcile_seconds.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "reconcile_queue_depth",
            "ControlPlanes woken by a change (of theirs, their objects, hooks or the \
             configuration) whose reconcile has not started yet; timed requeues are not counted",
            queue_depth.clone(),
        );
        let objects = Family::<ActionLabel, Counter>::default();
        registry.register(
            "objects",
            "Objects handled, by action (applied, unchanged, replaced, pruned)",
            objects.clone(),
        );
        let ready = Family::<ControlPlaneLabel, Gauge>::default();
        registry.register(
            "control_plane_ready",
            "1 when the control plane is Ready, else 0",
            ready.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_seconds,
            queue_depth,
            waiting: Mutex::default(),
            passes: Counter::default(),
            objects,
            ready,
        }
    }
}

impl Metrics {
    pub fn count_reconcile(&self, result: &str) {
        self.passes.inc();
        self.reconciles
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    /// A reconcile failed at operation `error` (counted under `reconciles` as well).
    pub fn count_error(&self, error: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabel {
                error: error.to_owned(),
            })
            .inc();
    }

    /// How many reconciles failed at operation `error` so far.
    pub fn errors_counted(&self, error: &str) -> u64 {
        self.reconcile_errors
            .get_or_create(&ErrorLabel {
                error: error.to_owned(),
            })
            .get()
    }

    /// ControlPlanes `names` were woken: each waits for one reconcile, however often woken.
    pub fn woken<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        for name in names {
            if !waiting.contains(name) {
                waiting.insert(name.to_owned());
            }
        }
        self.queue_depth
            .set(i64::try_from(waiting.len()).unwrap_or(i64::MAX));
    }

    /// ControlPlane `name`'s reconcile started (or was dropped: it no longer exists).
    pub fn dequeued(&self, name: &str) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.remove(name);
        self.queue_depth
            .set(i64::try_from(waiting.len()).unwrap_or(i64::MAX));
    }

    /// How many reconciles were counted so far, whatever their result.
    pub fn reconciles_counted(&self) -> u64 {
        self.passes.get()
    }

    pub fn count_objects(&self, action: &str, n: usize) {
        self.objects
            .get_or_create(&ActionLabel {
                action: action.to_owned(),
            })
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// How many objects were counted under `action` so far.
    pub fn objects_counted(&self, action: &str) -> u64 {
        self.objects
            .get_or_create(&ActionLabel {
                action: action.to_owned(),
            })
            .get()
    }

    pub fn set_ready(&self, control_plane: &str, ready: bool) {
        self.ready
            .get_or_create(&ControlPlaneLabel {
                control_plane: control_plane.to_owned(),
            })
            .set(i64::from(ready));
    }

    pub fn forget(&self, control_plane: &str) {
        self.ready.remove(&ControlPlaneLabel {
            control_plane: control_plane.to_owned(),
        });
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_reconciles_are_counted_by_the_operation_that_failed() {
        let metrics = Metrics::default();
        metrics.count_error("apply");
        metrics.count_error("apply");
        metrics.count_error("patch_status");
        let text = metrics.encode();
        assert!(
            text.contains("kflex_reconcile_errors_total{error=\"apply\"} 2")
                && text.contains("kflex_reconcile_errors_total{error=\"patch_status\"} 1"),
            "{text}"
        );
        assert_eq!(metrics.errors_counted("prune"), 0);
    }
}
