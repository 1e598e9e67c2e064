//! Whether a live object still is what kflex applied, without writing anything.
//!
//! After an apply the controller remembers each object's fingerprint. Where the API keeps a
//! `generation` (it moves on spec changes only, not on status updates) the fingerprint is the
//! generation plus a digest of the labels, annotations and owner references, which the
//! generation does not cover; elsewhere it is the `resourceVersion`, which moves on any change.
//! While the rendered set and every fingerprint are unchanged, the object is as applied. When a
//! fingerprint moved, the live object is read and compared: it is in sync if it still holds every
//! field kflex renders, with the values kflex renders, and no field kflex applied before and
//! renders no more (a label or annotation taken out of a template, the namespace label of
//! exposure gateway after a switch): those are found from what the object was rendered as when
//! it was last applied ([`rendered_digest`]) or, after a restart, from the fields the `kflex`
//! field manager owns ([`owns_unrendered`]); applying again then removes them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Annotations Kubernetes' controllers keep on kflex's objects (see [`fingerprint`]).
const CLUSTER_ANNOTATIONS: [&str; 1] = ["deployment.kubernetes.io/revision"];

/// The fingerprint of an object's metadata.
pub fn fingerprint(meta: &ObjectMeta) -> String {
    match meta.generation {
        Some(generation) if generation > 0 => {
            let mut hasher = Sha256::new();
            // Annotations the hosting cluster's own controllers write, which kflex never
            // renders: a Deployment's revision moving is not drift.
            let annotations: Option<Vec<_>> = meta
                .annotations
                .as_ref()
                .map(|a| {
                    a.iter()
                        .filter(|(key, _)| !CLUSTER_ANNOTATIONS.contains(&key.as_str()))
                        .collect::<Vec<_>>()
                })
                .filter(|kept| !kept.is_empty());
            let parts = (&meta.labels, &annotations, &meta.owner_references);
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

/// A digest of an object as rendered (see [`rendered_digest`]).
pub type RenderedDigest = [u8; 16];

/// A digest of an object as rendered, to notice that its rendering changed since it was applied.
pub fn rendered_digest(desired: &Value) -> RenderedDigest {
    let digest = Sha256::digest(serde_json::to_vec(desired).unwrap_or_default());
    let mut short = [0; 16];
    short.copy_from_slice(&digest[..16]);
    short
}

/// Whether `manager` owns, by server-side apply, a field of the live object (`managed_fields`,
/// its `metadata.managedFields`) that `desired` no longer has: applying `desired` again would
/// remove it. Only fields of mappings are compared (lists are compared whole by [`contains`]).
pub fn owns_unrendered(
    desired: &Value,
    managed_fields: Option<&[ManagedFieldsEntry]>,
    manager: &str,
) -> bool {
    managed_fields.into_iter().flatten().any(|entry| {
        entry.manager.as_deref() == Some(manager)
            && entry.operation.as_deref() == Some("Apply")
            && entry
                .fields_v1
                .as_ref()
                .is_some_and(|fields| owned_missing(&fields.0, desired))
    })
}

/// Whether a field of the `fieldsV1` set `owned` (keys `f:<name>`; `k:`, `v:` and `i:` name
/// list items) is absent from `desired`.
fn owned_missing(owned: &Value, desired: &Value) -> bool {
    let Some(owned) = owned.as_object() else {
        return false;
    };
    owned.iter().any(|(key, inner)| {
        let Some(field) = key.strip_prefix("f:") else {
            return false;
        };
        match desired.get(field) {
            None => true,
            Some(value) if value.is_object() => owned_missing(inner, value),
            Some(_) => false,
        }
    })
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

    #[test]
    fn a_field_kflex_applied_and_renders_no_more_is_found_from_managed_fields() {
        let entry = |manager: &str, operation: &str, fields: Value| ManagedFieldsEntry {
            manager: Some(manager.to_owned()),
            operation: Some(operation.to_owned()),
            fields_v1: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
                fields,
            )),
            ..ManagedFieldsEntry::default()
        };
        let owned = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {},
                                                        "kflex.kubestellar.org/control-plane-namespace": {},
                                                        "f:kflex.kubestellar.org/control-plane-namespace": {}}},
                           "f:spec": {"f:ports": {"k:{\"port\":443}": {".": {}, "f:port": {}}}}});
        let rendered =
            json!({"metadata": {"labels": {"app": "x"}}, "spec": {"ports": [{"port": 443}]}});
        let with_label = json!({"metadata": {"labels": {"app": "x", "kflex.kubestellar.org/control-plane-namespace": "cp1"}},
                                "spec": {"ports": [{"port": 443}]}});
        let kflex = [entry("kflex", "Apply", owned.clone())];
        assert!(
            owns_unrendered(&rendered, Some(&kflex), "kflex"),
            "the label went"
        );
        assert!(!owns_unrendered(&with_label, Some(&kflex), "kflex"));
        // Another manager's fields, or kflex's updates, are not kflex's to remove.
        let other = [
            entry("kubectl", "Apply", owned.clone()),
            entry("kflex", "Update", owned),
        ];
        assert!(!owns_unrendered(&rendered, Some(&other), "kflex"));
        assert!(!owns_unrendered(&rendered, None, "kflex"));
        assert_ne!(rendered_digest(&rendered), rendered_digest(&with_label));
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
        let annotated = |key: &str| {
            let mut m = meta(Some(3), "994", "a");
            m.annotations = Some(BTreeMap::from([(key.to_owned(), "2".to_owned())]));
            fingerprint(&m)
        };
        assert_eq!(
            annotated("deployment.kubernetes.io/revision"),
            applied,
            "the Deployment controller's revision is not drift"
        );
        assert_ne!(annotated("example.com/other"), applied);
    }
}
