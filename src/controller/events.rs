//! Events on the ControlPlane, only when something happened: a condition flipped, a Job was
//! replaced, cleanup was given up. Failing to publish one is logged, never fatal.

use kflex_core::api::ControlPlane;
use kube::Resource as _;
use kube::runtime::events::{Event, EventType};

use super::context::Context;
use super::status::Transition;

async fn publish_one(ctx: &Context, cp: &ControlPlane, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: (!note.is_empty()).then(|| truncated(note)),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &cp.object_ref(&())).await {
        tracing::warn!(control_plane = cp.metadata.name.as_deref().unwrap_or_default(), %err, "could not publish an Event");
    }
}

/// The API refuses an Event whose note is longer than this many bytes.
const NOTE_LIMIT: usize = 1024;

/// `note`, cut to fit an Event (at a character boundary, marked with `...`).
fn truncated(note: &str) -> String {
    if note.len() <= NOTE_LIMIT {
        return note.to_owned();
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
