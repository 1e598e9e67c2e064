//! The types and reasons of a ControlPlane's status conditions, named once: the controller
//! writes them, and the CLI's waits, `list` and `delete` read them.

use super::{ControlPlane, ControlPlaneCondition};

/// Condition `Synced`: whether the last pass applied everything the control plane renders.
pub const SYNCED: &str = "Synced";
/// Condition `Ready`: whether the control plane's API server is available.
pub const READY: &str = "Ready";

/// Reasons, as the controller writes them.
pub mod reason {
    /// Synced=True: everything was applied.
    pub const RECONCILE_SUCCESS: &str = "ReconcileSuccess";
    /// Synced=False: the control plane (or the hook catalog) cannot be rendered.
    pub const RECONCILE_ERROR: &str = "ReconcileError";
    /// Synced=False: a hook the control plane names does not exist.
    pub const POST_CREATE_HOOK_NOT_FOUND: &str = "PostCreateHookNotFound";
    /// Synced and Ready False: a type kflex does not run.
    pub const UNSUPPORTED: &str = "Unsupported";
    /// Synced=False: the control plane carries the pause annotation.
    pub const RECONCILE_PAUSED: &str = "ReconcilePaused";
    /// Synced=False: the hosting cluster's settings ConfigMap is invalid.
    pub const CONFIG_ERROR: &str = "ConfigError";
    /// Synced=False: the settings ConfigMap does not exist (yet).
    pub const CONFIG_MISSING: &str = "ConfigMissing";
    /// Synced=False: an object could not be applied.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// Synced=False: an object that is no longer rendered could not be deleted.
    pub const PRUNE_FAILED: &str = "PruneFailed";
    /// Synced=False while deleting: a cleanup Job failed.
    pub const CLEANUP_FAILED: &str = "CleanupFailed";
    /// Synced=True while deleting: the cleanup Jobs run.
    pub const CLEANUP_RUNNING: &str = "CleanupRunning";
    /// Ready=True.
    pub const AVAILABLE: &str = "Available";
    /// Ready=False: the API server is not available (yet).
    pub const UNAVAILABLE: &str = "Unavailable";
    /// Ready=False while the control plane is deleted.
    pub const DELETING: &str = "Deleting";
}

/// Synced=False reasons that will not pass by themselves: the controller does not go on until
/// a person changes the ControlPlane, a hook or the configuration.
pub const REFUSALS: [&str; 5] = [
    reason::POST_CREATE_HOOK_NOT_FOUND,
    reason::RECONCILE_ERROR,
    reason::UNSUPPORTED,
    reason::RECONCILE_PAUSED,
    reason::CONFIG_ERROR,
];

impl ControlPlane {
    /// The status condition of `type_`, if the controller has written one.
    pub fn condition(&self, type_: &str) -> Option<&ControlPlaneCondition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|condition| condition.type_ == type_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ControlPlaneSpec;

    #[test]
    fn a_condition_is_found_by_its_type_and_only_there() {
        let spec: ControlPlaneSpec =
            serde_json::from_value(serde_json::json!({"type": "k8s"})).expect("a minimal spec");
        let mut cp = ControlPlane::new("cp1", spec);
        assert!(cp.condition(SYNCED).is_none(), "no status yet");
        cp.status = serde_json::from_value(serde_json::json!({"observedGeneration": 1, "conditions": [
            {"type": SYNCED, "status": "True", "reason": reason::RECONCILE_SUCCESS, "message": "",
             "lastTransitionTime": "2026-12-03T00:00:00Z", "lastUpdateTime": "2026-12-03T00:00:00Z"},
            {"type": READY, "status": "False", "reason": reason::UNAVAILABLE, "message": "starting",
             "lastTransitionTime": "2026-12-03T00:00:00Z", "lastUpdateTime": "2026-12-03T00:00:00Z"},
        ]}))
        .expect("a status");
        let ready = cp.condition(READY).expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.message.as_str()),
            ("False", "starting")
        );
        assert_eq!(
            cp.condition(SYNCED).map(|c| c.reason.as_str()),
            Some("ReconcileSuccess")
        );
        assert!(cp.condition("Audited").is_none());
    }
}
