//! Whether a live object still is what kflex applied, without writing anything.
//!
//! After an apply the controller remembers each object's fingerprint: its `generation` where
//! the API keeps one (it changes on spec changes only, not on status updates), else its
//! `resourceVersion`. While the rendered set and every fingerprint are unchanged, the object
//! is as applied. When a fingerprint moved, the live object is read and compared: it is in sync
//! if it still holds every field kflex renders, with the values kflex renders.

use serde_json::Value;

/// The fingerprint of an object's metadata.
pub fn fingerprint(generation: Option<i64>, resource_version: Option<&str>) -> String {
    match generation {
        Some(generation) if generation > 0 => format!("g{generation}"),
        _ => format!("v{}", resource_version.unwrap_or_default()),
    }
}

/// Whether `live` holds everything `desired` says. Empty values in `desired` match absent ones
/// (the API server drops them); list elements are compared in order; `status` is not compared.
pub fn contains(desired: &Value, live: &Value) -> bool {
    match desired {
        Value::Object(wanted) => {
            let have = live.as_object();
            wanted.iter().all(|(key, value)| {
                if key == "status" {
                    return true;
                }
                match have.and_then(|m| m.get(key)) {
                    Some(found) => contains(value, found),
                    None => is_empty(value),
                }
            })
        }
        Value::Array(wanted) => live.as_array().is_some_and(|have| {
            have.len() == wanted.len() && wanted.iter().zip(have).all(|(w, h)| contains(w, h))
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
    fn fingerprints_prefer_the_generation() {
        assert_eq!(fingerprint(Some(3), Some("991")), "g3");
        assert_eq!(fingerprint(None, Some("991")), "v991");
        assert_eq!(fingerprint(Some(0), Some("7")), "v7");
    }
}
