//! Whether a live object still is what kflex applied, without writing anything.
//!
//! After an apply the controller remembers each object's fingerprint. Where the API keeps a
//! `generation` (it moves on spec changes only, not on status updates) the fingerprint is the
//! generation plus a digest of the labels, annotations and owner references, which the
//! generation does not cover; elsewhere it is the `resourceVersion`, which moves on any change.
//! While the rendered set and every fingerprint are unchanged, the object is as applied. When a
//! fingerprint moved, the live object is read and compared: it is in sync if it still holds every
//! field kflex renders, with the values kflex renders.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The fingerprint of an object's metadata.
pub fn fingerprint(meta: &ObjectMeta) -> String {
    match meta.generation {
        Some(generation) if generation > 0 => {
            let mut hasher = Sha256::new();
            let parts = (&meta.labels, &meta.annotations, &meta.owner_references);
            hasher.update(serde_json::to_vec(&parts).unwrap_or_default());
            let digest = hasher.finalize();
            let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("g{generation}-{short}")
        }
        _ => format!("v{}", meta.resource_version.as_deref().unwrap_or_default()),
    }
}

/// Whether `live` holds everything `desired` says. Empty values in `desired` match absent ones
/// (the API server drops them); list elements are compared in order; the top-level `status`
/// is not compared (the API server ignores it in an apply).
pub fn contains(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(wanted), Value::Object(have)) => wanted
            .iter()
            .filter(|(key, _)| key.as_str() != "status")
            .all(|(key, value)| field_matches(value, have.get(key))),
        _ => field_matches(desired, Some(live)),
    }
}

fn field_matches(desired: &Value, live: Option<&Value>) -> bool {
    let Some(live) = live else {
        return is_empty(desired);
    };
    match desired {
        Value::Object(wanted) => {
            let have = live.as_object();
            wanted
                .iter()
                .all(|(key, value)| field_matches(value, have.and_then(|m| m.get(key))))
        }
        Value::Array(wanted) => live.as_array().is_some_and(|have| {
            have.len() == wanted.len()
                && wanted
                    .iter()
                    .zip(have)
                    .all(|(w, h)| field_matches(w, Some(h)))
        }),
        Value::Null => true,
        scalar => scalar == live || same_number(scalar, live),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.values().all(is_empty),
        Value::Array(items) => items.is_empty(),
        Value::String(_) | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// 1 and 1.0 are the same number to the API server.
fn same_number(a: &Value, b: &Value) -> bool {
    matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_and_extra_fields_on_the_live_object_are_fine() {
        let desired = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "args": ["x"]}]}}, "selector": {}}});
        let live = json!({"spec": {"replicas": 1, "revisionHistoryLimit": 10, "template": {"spec": {"containers": [{"name": "a", "args": ["x"], "imagePullPolicy": "Always"}]}}}, "status": {"replicas": 0}});
        assert!(contains(&desired, &live));
    }

    #[test]
    fn a_changed_or_missing_field_is_drift() {
        let desired = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "args": ["x"]}]}}}});
        let edited = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "a", "args": ["x"]}]}}}});
        let removed =
            json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a"}]}}}});
        let added = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "args": ["x"]}, {"name": "b"}]}}}});
        for live in [edited, removed, added] {
            assert!(!contains(&desired, &live), "{live}");
        }
    }

    #[test]
    fn only_the_top_level_status_is_skipped() {
        let desired = json!({"data": {"status": "on"}, "spec": {"status": "wanted"}});
        let live = json!({"data": {"status": "off"}, "spec": {"status": "wanted"}});
        assert!(!contains(&desired, &live), "a ConfigMap key named status");
        let live = json!({"data": {"status": "on"}, "spec": {"status": "other"}});
        assert!(!contains(&desired, &live), "a field spec.status");
        let with_status = json!({"kind": "X", "status": {"phase": "Ready"}});
        assert!(contains(&with_status, &json!({"kind": "X"})));
    }

    fn meta(generation: Option<i64>, version: &str, label: &str) -> ObjectMeta {
        ObjectMeta {
            generation,
            resource_version: Some(version.to_owned()),
            labels: Some(BTreeMap::from([("team".to_owned(), label.to_owned())])),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn fingerprints_prefer_the_generation_but_see_metadata_edits() {
        let applied = fingerprint(&meta(Some(3), "991", "a"));
        assert!(applied.starts_with("g3-"), "{applied}");
        assert_eq!(
            fingerprint(&meta(Some(3), "992", "a")),
            applied,
            "a status update moves only the resourceVersion"
        );
        assert_ne!(
            fingerprint(&meta(Some(3), "993", "b")),
            applied,
            "a label edit does not move the generation"
        );
        assert_eq!(fingerprint(&meta(None, "991", "a")), "v991");
        assert_eq!(fingerprint(&meta(Some(0), "7", "a")), "v7");
    }
}
