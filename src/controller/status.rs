//! The ControlPlane's status: conditions whose timestamps change only when they do
//! (`lastTransitionTime` only when the status flips), `observedGeneration`, `secretRef`, the
//! hooks' state — written only when something changed, and with an Event only on a transition.

use std::collections::BTreeMap;

use kflex_core::api::{ControlPlane, ControlPlaneCondition, ControlPlaneStatus, SecretReference};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

pub use kflex_core::api::conditions::{READY, SYNCED};

/// One condition as the controller decides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Condition {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.to_owned(),
            // Messages quote what tenants wrote (hook values, object names); `kubectl describe`
            // prints them to an administrator's terminal as they are.
            message: kflex_core::text::escape_unsafe(&message.into()).into_owned(),
        }
    }
}

fn status_text(status: bool) -> String {
    if status { "True" } else { "False" }.to_owned()
}

/// What this reconcile found; `None` fields keep what the status says.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    pub synced: Option<Condition>,
    pub ready: Option<Condition>,
    pub secret_ref: Option<SecretReference>,
    pub hooks: Option<BTreeMap<String, bool>>,
    pub hooks_completed: Option<bool>,
    /// The spec was acted on (rendered; applied or refused): `observedGeneration` moves to it.
    /// Not while paused or blocked on the configuration.
    pub observed: bool,
}

/// A condition whose status flipped (or appeared), for an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub condition: Condition,
}

/// The next status from the current one, the findings and the time, and the transitions.
pub fn next(
    cp: &ControlPlane,
    findings: &Findings,
    now: &str,
) -> (ControlPlaneStatus, Vec<Transition>) {
    let current = cp.status.clone().unwrap_or_default();
    let mut transitions = Vec::new();
    let mut conditions = Vec::new();
    for (type_, found) in [(SYNCED, &findings.synced), (READY, &findings.ready)] {
        let old = current.conditions.iter().find(|c| c.type_ == type_);
        let Some(new) = found else {
            conditions.extend(old.cloned());
            continue;
        };
        let status = status_text(new.status);
        let condition = match old {
            Some(old)
                if old.status == status
                    && old.reason == new.reason
                    && old.message == new.message =>
            {
                old.clone()
            }
            _ => {
                let flipped = old.is_none_or(|o| o.status != status);
                if flipped {
                    transitions.push(Transition {
                        condition: new.clone(),
                    });
                }
                ControlPlaneCondition {
                    type_: type_.to_owned(),
                    status,
                    last_update_time: now.to_owned(),
                    last_transition_time: match old {
                        Some(old) if !flipped => old.last_transition_time.clone(),
                        _ => now.to_owned(),
                    },
                    reason: new.reason.clone(),
                    message: new.message.clone(),
                }
            }
        };
        conditions.push(condition);
    }
    // Conditions someone else added are kept, after kflex's own.
    conditions.extend(
        current
            .conditions
            .iter()
            .filter(|c| c.type_ != SYNCED && c.type_ != READY)
            .cloned(),
    );
    let status = ControlPlaneStatus {
        conditions,
        observed_generation: if findings.observed {
            cp.metadata.generation.unwrap_or_default()
        } else {
            current.observed_generation
        },
        secret_ref: findings.secret_ref.clone().or(current.secret_ref),
        post_create_hooks: findings.hooks.clone().or(current.post_create_hooks),
        post_create_hook_completed: findings
            .hooks_completed
            .or(current.post_create_hook_completed),
    };
    (status, transitions)
}

/// Writes `status` unless it is the current one; whether it wrote.
pub async fn write(
    api: &Api<ControlPlane>,
    cp: &ControlPlane,
    status: &ControlPlaneStatus,
) -> Result<bool, kube::Error> {
    let current = cp.status.clone().unwrap_or_default();
    if &current == status {
        return Ok(false);
    }
    let mut value = serde_json::to_value(status).map_err(kube::Error::SerdeError)?;
    // A merge patch merges maps: hooks no longer used must be removed explicitly.
    if let Some(old_hooks) = &current.post_create_hooks {
        let hooks = value.as_object_mut().and_then(|s| {
            s.entry("postCreateHooks")
                .or_insert_with(|| json!({}))
                .as_object_mut()
        });
        if let Some(hooks) = hooks {
            for name in old_hooks.keys() {
                hooks.entry(name.clone()).or_insert(Value::Null);
            }
        }
    }
    let name = cp.metadata.name.clone().unwrap_or_default();
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": value })),
    )
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use kflex_core::api::{ControlPlaneSpec, ControlPlaneType};

    use super::*;

    fn cp_with(status: Option<ControlPlaneStatus>) -> ControlPlane {
        let spec: ControlPlaneSpec = serde_json::from_value(json!({"type": "k8s"})).unwrap();
        let mut cp = ControlPlane::new("cp1", spec);
        cp.metadata.generation = Some(2);
        cp.status = status;
        assert_eq!(cp.spec.type_, ControlPlaneType::K8s);
        cp
    }

    fn findings(ready: bool, message: &str) -> Findings {
        Findings {
            synced: Some(Condition::new(SYNCED, true, "ReconcileSuccess", "")),
            ready: Some(Condition::new(
                READY,
                ready,
                if ready { "Available" } else { "Unavailable" },
                message,
            )),
            observed: true,
            ..Findings::default()
        }
    }

    #[test]
    fn messages_never_carry_control_characters() {
        let condition = Condition::new(READY, false, "ApplyFailed", "x\n\u{1b}[2Jy\u{2028}");
        assert_eq!(condition.message, "x\\n\\u{1b}[2Jy\\u{2028}");
    }

    #[test]
    fn transition_times_move_only_on_transitions() {
        let (first, transitions) = next(&cp_with(None), &findings(false, "waiting"), "t1");
        assert_eq!(transitions.len(), 2, "both conditions appear");
        assert_eq!(first.observed_generation, 2);
        // Same findings later: nothing changes, not even lastUpdateTime.
        let (same, transitions) = next(
            &cp_with(Some(first.clone())),
            &findings(false, "waiting"),
            "t2",
        );
        assert_eq!(same, first);
        assert!(transitions.is_empty());
        // Another message, same status: updated, not transitioned.
        let (updated, transitions) = next(
            &cp_with(Some(first.clone())),
            &findings(false, "still"),
            "t3",
        );
        let ready = updated
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .unwrap();
        assert_eq!(
            (
                ready.last_update_time.as_str(),
                ready.last_transition_time.as_str()
            ),
            ("t3", "t1")
        );
        assert!(transitions.is_empty());
        // Ready: a transition.
        let (now_ready, transitions) = next(&cp_with(Some(updated)), &findings(true, ""), "t4");
        let ready = now_ready
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.last_transition_time.as_str()),
            ("True", "t4")
        );
        assert_eq!(transitions.len(), 1);
    }

    #[test]
    fn a_paused_reconcile_observes_nothing_and_other_conditions_stay() {
        let (first, _) = next(&cp_with(None), &findings(true, ""), "t1");
        let mut current = first.clone();
        current.conditions.push(ControlPlaneCondition {
            type_: "Audited".into(),
            status: "True".into(),
            last_update_time: "t0".into(),
            last_transition_time: "t0".into(),
            reason: "ByPolicy".into(),
            message: String::new(),
        });
        let mut cp = cp_with(Some(current));
        cp.metadata.generation = Some(3);
        let paused = Findings {
            synced: Some(Condition::new(SYNCED, false, "ReconcilePaused", "paused")),
            ..Findings::default()
        };
        let (next_status, _) = next(&cp, &paused, "t2");
        assert_eq!(
            next_status.observed_generation, 2,
            "generation 3 is not acted on"
        );
        let types: Vec<&str> = next_status
            .conditions
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(types, ["Synced", "Ready", "Audited"]);
    }
}
