//! Prometheus metrics: reconciles, errors, durations, applied objects, readiness per control
//! plane.

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
    pub reconcile_seconds: Histogram,
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
        let reconcile_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "reconcile_duration_seconds",
            "How long a reconcile took",
            reconcile_seconds.clone(),
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
            reconcile_seconds,
            objects,
            ready,
        }
    }
}

impl Metrics {
    pub fn count_reconcile(&self, result: &str) {
        self.reconciles
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
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
