//! Ownership metadata on what the controller applies: an owner reference to the ControlPlane
//! (so Kubernetes' garbage collector removes everything once the ControlPlane is gone) and
//! ApplySet membership (so `kubectl` and the controller's pruning know the set), with the
//! ControlPlane as the ApplySet's parent.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use kflex_core::api::ControlPlane;
use kflex_core::manifest::Manifest;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// On every member: the ApplySet's id.
pub const PART_OF: &str = "applyset.kubernetes.io/part-of";
/// On the parent (the ControlPlane).
pub const ID: &str = "applyset.kubernetes.io/id";
pub const TOOLING: &str = "applyset.kubernetes.io/tooling";
pub const CONTAINS_GROUP_KINDS: &str = "applyset.kubernetes.io/contains-group-kinds";
pub const ADDITIONAL_NAMESPACES: &str = "applyset.kubernetes.io/additional-namespaces";

const API_VERSION: &str = "tenancy.kflex.kubestellar.org/v1alpha1";
const GROUP: &str = "tenancy.kflex.kubestellar.org";

/// The ApplySet id of ControlPlane `name`, as kubectl computes it for a parent:
/// `applyset-<base64url(sha256("<name>.<namespace>.<kind>.<group>"))>-v1`.
pub fn applyset_id(name: &str) -> String {
    let digest = Sha256::digest(format!("{name}..ControlPlane.{GROUP}").as_bytes());
    format!(
        "applyset-{}-v1",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// Adds the owner reference and the ApplySet label to every manifest of `cp`.
pub fn decorate(manifests: &mut [Manifest], cp: &ControlPlane) {
    let name = cp.metadata.name.clone().unwrap_or_default();
    let uid = cp.metadata.uid.clone().unwrap_or_default();
    let id = applyset_id(&name);
    for manifest in manifests.iter_mut() {
        manifest
            .labels_mut()
            .insert(PART_OF.to_owned(), Value::from(id.clone()));
        let metadata = manifest
            .object_mut()
            .entry("metadata")
            .or_insert_with(|| json!({}));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert(
                "ownerReferences".to_owned(),
                json!([{
                    "apiVersion": API_VERSION,
                    "kind": "ControlPlane",
                    "name": name,
                    "uid": uid,
                    "controller": true,
                    "blockOwnerDeletion": false,
                }]),
            );
        }
    }
}

/// `Kind.group` of a manifest (core kinds: `Kind`), as ApplySets name kinds.
pub fn group_kind_of(manifest: &Manifest) -> String {
    if manifest.group().is_empty() {
        manifest.kind().to_owned()
    } else {
        format!("{}.{}", manifest.kind(), manifest.group())
    }
}

/// The `Kind.group` of every manifest, sorted.
pub fn group_kinds(manifests: &[Manifest]) -> BTreeSet<String> {
    manifests.iter().map(group_kind_of).collect()
}

/// The namespaces the members live in, sorted.
pub fn namespaces(manifests: &[Manifest]) -> BTreeSet<String> {
    manifests
        .iter()
        .filter_map(|m| m.namespace().map(str::to_owned))
        .collect()
}

/// Splits an annotation's comma-separated list.
pub fn split(value: Option<&String>) -> BTreeSet<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The parent's ApplySet labels and annotations for members of `kinds` in `namespaces`.
pub fn parent_metadata(
    name: &str,
    kinds: &BTreeSet<String>,
    namespaces: &BTreeSet<String>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let join = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(",");
    let labels = BTreeMap::from([(ID.to_owned(), applyset_id(name))]);
    let annotations = BTreeMap::from([
        (
            TOOLING.to_owned(),
            format!("kflex/v{}", env!("CARGO_PKG_VERSION")),
        ),
        (CONTAINS_GROUP_KINDS.to_owned(), join(kinds)),
        (ADDITIONAL_NAMESPACES.to_owned(), join(namespaces)),
    ]);
    (labels, annotations)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kubectl's own test vector (apply_test.go): Secret my-set in namespace test.
    #[test]
    fn the_id_is_computed_as_kubectl_does() {
        let digest = Sha256::digest(b"my-set.test.Secret.");
        let id = format!(
            "applyset-{}-v1",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        );
        assert_eq!(
            id,
            "applyset-0eFHV8ySqp7XoShsGvyWFQD3s96yqwHmzc4e0HR1dsY-v1"
        );
        assert!(
            applyset_id("cp1").starts_with("applyset-") && applyset_id("cp1") != applyset_id("cp2")
        );
    }
}
