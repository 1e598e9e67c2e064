//! Waiting for a ControlPlane to become Ready, as `create` and `adopt` do: its status is polled
//! and shown; a refusal by the controller (Synced=False for a reason that will not pass by
//! itself) ends the wait at once with the controller's message, and so does a timeout.

use std::time::{Duration, Instant};

use anyhow::bail;
use kflex_core::api::ControlPlane;
use kflex_core::api::conditions::{READY, REFUSALS, SYNCED};
use kube::Api;

use super::progress::{Look, Progress, elapsed};

/// After this long without any status, the wait says the controller may not be running.
const NO_CONTROLLER_HINT: Duration = Duration::from_secs(15);

/// Whether a command waits for what it started, and how long: shared by `init`, `create`,
/// `adopt` and `delete`.
#[derive(Clone, Copy, Debug, clap::Args)]
pub(crate) struct Waiting {
    /// Wait until done (installed, Ready and switched to, or removed); --wait=false returns
    /// once the change is made
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub wait: bool,
    /// How long to wait
    #[arg(long, value_parser = crate::bootstrap::duration::parse, default_value = "10m")]
    pub timeout: Duration,
}

/// Where a ControlPlane stands, from its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    Ready,
    /// The controller refuses it: the reason and message.
    Refused(String),
    /// Still on the way: what it waits for.
    Waiting(String),
}

/// Judges `cp`'s status; only a status about its current generation counts.
pub fn standing(cp: &ControlPlane) -> Standing {
    let generation = cp.metadata.generation.unwrap_or_default();
    let observed = cp.status.as_ref().map(|status| status.observed_generation);
    let synced = cp.condition(SYNCED);
    if let Some(synced) = synced
        && synced.status == "False"
        && REFUSALS.contains(&synced.reason.as_str())
    {
        return Standing::Refused(format!("{}: {}", synced.reason, synced.message));
    }
    if observed.unwrap_or_default() < generation || synced.is_none() {
        return Standing::Waiting("the kflex controller to take it up".into());
    }
    match cp.condition(READY) {
        Some(ready) if ready.status == "True" => Standing::Ready,
        Some(ready) => {
            let mut status = format!("Ready={} ({})", ready.status, ready.reason);
            if !ready.message.is_empty() {
                status.push_str(": ");
                status.push_str(&ready.message);
            }
            if let Some(synced) = synced.filter(|synced| synced.status == "False") {
                status.push_str(&format!(
                    "; Synced=False ({}): {}",
                    synced.reason, synced.message
                ));
            }
            Standing::Waiting(status)
        }
        None => Standing::Waiting("the Ready condition".into()),
    }
}

/// Waits until ControlPlane `name` is Ready, up to `timeout`; returns it as last read.
pub async fn until_ready(
    api: &Api<ControlPlane>,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<ControlPlane> {
    let mut progress = Progress::start(format!("ControlPlane {name} to be Ready"));
    let started = Instant::now();
    let outcome = progress
        .poll(timeout, || async {
            let cp = match api.get_opt(name).await {
                Ok(Some(cp)) => cp,
                Ok(None) => bail!("ControlPlane {name} was deleted while waiting for it"),
                // One failed read is not the end of a ten-minute wait.
                Err(err) => {
                    return Ok(Look::Waiting(format!("reading ControlPlane {name}: {err}")));
                }
            };
            Ok(match standing(&cp) {
                Standing::Ready => Look::Done(Ok(cp)),
                Standing::Refused(reason) => Look::Done(Err(reason)),
                Standing::Waiting(status)
                    if cp.status.is_none() && started.elapsed() > NO_CONTROLLER_HINT =>
                {
                    Look::Waiting(format!(
                        "{status} (no status after {}: is the kflex controller running? \
                         `kubectl -n kubeflex-system get deployment kubeflex-controller-manager`)",
                        elapsed(started.elapsed())
                    ))
                }
                Standing::Waiting(status) => Look::Waiting(status),
            })
        })
        .await;
    match outcome {
        Ok(Ok(Ok(cp))) => {
            progress.finish(&format!("ControlPlane {name} is Ready"));
            Ok(cp)
        }
        Ok(Ok(Err(reason))) => {
            progress.finish(&format!("ControlPlane {name} is refused"));
            bail!(
                "the kflex controller refuses ControlPlane {name}: {reason}\n\
                 (the ControlPlane stays; fix it with `kubectl edit controlplane {name}` \
                 or remove it with `kflex delete {name}`)"
            )
        }
        Ok(Err(last_status)) => {
            progress.finish(&format!("ControlPlane {name} is not Ready"));
            bail!(
                "timed out after {} waiting for ControlPlane {name} to be Ready; last seen: \
                 {last_status}\n(the ControlPlane stays: `kflex list` shows it, `kflex delete \
                 {name}` removes it)",
                elapsed(timeout)
            )
        }
        Err(err) => {
            progress.finish(&format!("ControlPlane {name} is gone"));
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cp(generation: i64, status: serde_json::Value) -> ControlPlane {
        serde_json::from_value(json!({
            "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1",
            "kind": "ControlPlane",
            "metadata": {"name": "cp1", "generation": generation},
            "spec": {"type": "k8s"},
            "status": status,
        }))
        .unwrap()
    }

    fn condition(type_: &str, status: &str, reason: &str, message: &str) -> serde_json::Value {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": "2026-01-01T00:00:00Z", "lastUpdateTime": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn a_missing_hook_ends_the_wait_with_the_controllers_message() {
        let refused = cp(
            1,
            json!({"observedGeneration": 0, "conditions": [
                condition("Synced", "False", "PostCreateHookNotFound", "PostCreateHook nope does not exist"),
            ]}),
        );
        assert_eq!(
            standing(&refused),
            Standing::Refused("PostCreateHookNotFound: PostCreateHook nope does not exist".into())
        );
    }

    #[test]
    fn ready_counts_only_for_the_current_generation() {
        let conditions = json!([
            condition("Synced", "True", "ReconcileSuccess", ""),
            condition("Ready", "True", "Available", ""),
        ]);
        let stale = cp(
            2,
            json!({"observedGeneration": 1, "conditions": conditions}),
        );
        assert!(matches!(standing(&stale), Standing::Waiting(_)));
        let current = cp(
            2,
            json!({"observedGeneration": 2, "conditions": conditions}),
        );
        assert_eq!(standing(&current), Standing::Ready);
    }

    #[test]
    fn waiting_says_what_is_missing() {
        let waiting = cp(
            1,
            json!({"observedGeneration": 1, "conditions": [
                condition("Synced", "True", "ReconcileSuccess", ""),
                condition("Ready", "False", "Unavailable", "Deployment kube-apiserver is not ready"),
            ]}),
        );
        assert_eq!(
            standing(&waiting),
            Standing::Waiting(
                "Ready=False (Unavailable): Deployment kube-apiserver is not ready".into()
            )
        );
    }
}
