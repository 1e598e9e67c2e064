//! Events on the ControlPlane, only when something happened: a condition flipped, a Job was
//! replaced, cleanup was given up, a listed member was refused deletion (once per distinct
//! refusal). Failing to publish one is logged, never fatal.

use k8s_openapi::api::core::v1::ObjectReference;
use kflex_core::api::ControlPlane;
use kube::Resource as _;
use kube::runtime::events::{Event, EventType};

use super::context::Context;
use super::status::Transition;
use crate::cluster::trust::Refusal;

async fn publish_one(ctx: &Context, cp: &ControlPlane, type_: EventType, reason: &str, note: &str) {
    publish_about(ctx, cp, type_, reason, note, None).await;
}

/// Publishes an Event on `cp`, about `related` too. kube's recorder folds Events of one reason
/// on one object into a series that keeps the first note, unless their `related` objects
/// differ.
async fn publish_about(
    ctx: &Context,
    cp: &ControlPlane,
    type_: EventType,
    reason: &str,
    note: &str,
    related: Option<ObjectReference>,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: (!note.is_empty()).then(|| truncated(note)),
        action: "Reconcile".to_owned(),
        secondary: related,
    };
    if let Err(err) = ctx.recorder.publish(&event, &cp.object_ref(&())).await {
        tracing::warn!(control_plane = cp.metadata.name.as_deref().unwrap_or_default(), %err, "could not publish an Event");
    }
}

/// The API refuses an Event whose note is longer than this many bytes.
const NOTE_LIMIT: usize = 1024;

/// `note` with control characters escaped (it quotes what tenants wrote, and `kubectl` prints
/// it as it is), cut to fit an Event (at a character boundary, marked with `...`).
fn truncated(note: &str) -> String {
    let note = kflex_core::text::escape_unsafe(note);
    if note.len() <= NOTE_LIMIT {
        return note.into_owned();
    }
    let mut end = NOTE_LIMIT - 3;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &note[..end])
}

/// One Event per condition that flipped.
pub async fn publish(ctx: &Context, cp: &ControlPlane, transitions: &[Transition]) {
    for Transition { condition } in transitions {
        let type_ = if condition.status {
            EventType::Normal
        } else {
            EventType::Warning
        };
        let note = if condition.message.is_empty() {
            format!("{} is {}", condition.type_, condition.status)
        } else {
            condition.message.clone()
        };
        publish_one(ctx, cp, type_, &condition.reason, &note).await;
    }
}

pub async fn normal(ctx: &Context, cp: &ControlPlane, reason: &str, note: &str) {
    publish_one(ctx, cp, EventType::Normal, reason, note).await;
}

pub async fn warn(ctx: &Context, cp: &ControlPlane, reason: &str, note: &str) {
    publish_one(ctx, cp, EventType::Warning, reason, note).await;
}

/// The reason of the Warning Events for members the controller refused to delete.
pub const PRUNE_REFUSED: &str = "PruneRefused";

/// At most this many refusal Events per pass; the rest are counted in one more (and logged).
const REFUSALS_SHOWN: usize = 10;

/// Warns about the members this pass refused to delete that were not refused the pass before
/// (each distinct refusal once, not on every pass), and logs them.
pub async fn refused(ctx: &Context, cp: &ControlPlane, refusals: &[Refusal]) {
    let name = cp.metadata.name.as_deref().unwrap_or_default();
    let now = refusals.iter().map(ToString::to_string).collect();
    let new = ctx.newly_reported(name, now);
    for note in &new {
        tracing::warn!(control_plane = name, refusal = %note, "not deleting a listed member");
    }
    for refusal in refusals
        .iter()
        .filter(|r| new.contains(&r.to_string()))
        .take(REFUSALS_SHOWN)
    {
        let related = ObjectReference {
            kind: Some(refusal.key.kind.clone()),
            namespace: refusal.key.namespace.clone(),
            name: Some(refusal.key.name.clone()),
            ..ObjectReference::default()
        };
        publish_about(
            ctx,
            cp,
            EventType::Warning,
            PRUNE_REFUSED,
            &refusal.to_string(),
            Some(related),
        )
        .await;
    }
    if new.len() > REFUSALS_SHOWN {
        let more = format!(
            "{} more listed members are not deleted (the controller's log names each)",
            new.len() - REFUSALS_SHOWN
        );
        warn(ctx, cp, PRUNE_REFUSED, &more).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_to_what_the_api_accepts() {
        assert_eq!(truncated("short"), "short");
        let long = "é".repeat(700);
        let cut = truncated(&long);
        assert!(cut.len() <= NOTE_LIMIT, "{}", cut.len());
        assert!(cut.ends_with("...") && cut.starts_with("éé"));
    }
}
