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
/// On the parent: its Secret members (kflex's own; see [`secrets`]).
pub const SECRETS: &str = "kflex.kubestellar.org/secrets";

const API_VERSION: &str = "tenancy.kflex.kubestellar.org/v1alpha1";
const GROUP: &str = "tenancy.kflex.kubestellar.org";

/// The ApplySet id of a parent, as kubectl computes it:
/// `applyset-<base64url(sha256("<name>.<namespace>.<kind>.<group>"))>-v1`.
fn parent_id(name: &str, namespace: &str, kind: &str, group: &str) -> String {
    let digest = Sha256::digest(format!("{name}.{namespace}.{kind}.{group}").as_bytes());
    format!(
        "applyset-{}-v1",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// The ApplySet id of ControlPlane `name` (cluster-scoped, so no namespace).
pub fn applyset_id(name: &str) -> String {
    parent_id(name, "", "ControlPlane", GROUP)
}

/// Adds the ApplySet label to every manifest of `cp`, and an owner reference to the
/// ControlPlane to every one outside `system_namespace`. What lives in the system namespace
/// (the database hook's ServiceAccount and Job) is needed by the cleanup that runs while the
/// ControlPlane is being deleted; with an owner reference, a foreground deletion would remove
/// it first. The cleanup deletes those itself.
pub fn decorate(manifests: &mut [Manifest], cp: &ControlPlane, system_namespace: &str) {
    let name = cp.metadata.name.clone().unwrap_or_default();
    let uid = cp.metadata.uid.clone().unwrap_or_default();
    let id = applyset_id(&name);
    for manifest in manifests.iter_mut() {
        manifest
            .labels_mut()
            .insert(PART_OF.to_owned(), Value::from(id.clone()));
        if manifest.namespace() == Some(system_namespace) {
            continue;
        }
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

/// `namespace/name` of every Secret among the manifests, sorted. The controller may not list
/// Secrets, so the parent names its Secret members (annotation [`SECRETS`]) for pruning.
pub fn secrets(manifests: &[Manifest]) -> BTreeSet<String> {
    manifests
        .iter()
        .filter(|m| m.is::<k8s_openapi::api::core::v1::Secret>())
        .map(|m| format!("{}/{}", m.namespace().unwrap_or_default(), m.name()))
        .collect()
}

/// What the parent records about its members.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// `Kind.group` of every member.
    pub kinds: BTreeSet<String>,
    pub namespaces: BTreeSet<String>,
    /// `namespace/name` of every Secret member.
    pub secrets: BTreeSet<String>,
}

impl Members {
    pub fn of(manifests: &[Manifest]) -> Self {
        Self {
            kinds: group_kinds(manifests),
            namespaces: namespaces(manifests),
            secrets: secrets(manifests),
        }
    }

    /// What the parent's annotations say.
    pub fn recorded(annotations: &BTreeMap<String, String>) -> Self {
        Self {
            kinds: split(annotations.get(CONTAINS_GROUP_KINDS)),
            namespaces: split(annotations.get(ADDITIONAL_NAMESPACES)),
            secrets: split(annotations.get(SECRETS)),
        }
    }

    pub fn union(&self, other: &Self) -> Self {
        Self {
            kinds: self.kinds.union(&other.kinds).cloned().collect(),
            namespaces: self.namespaces.union(&other.namespaces).cloned().collect(),
            secrets: self.secrets.union(&other.secrets).cloned().collect(),
        }
    }
}

/// The parent's ApplySet labels and annotations for `members`; an annotation that is `None`
/// must be absent.
pub fn parent_metadata(
    name: &str,
    members: &Members,
) -> (BTreeMap<String, String>, BTreeMap<String, Option<String>>) {
    let join = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(",");
    let labels = BTreeMap::from([(ID.to_owned(), applyset_id(name))]);
    let annotations = BTreeMap::from([
        (
            TOOLING.to_owned(),
            Some(format!("kflex/v{}", env!("CARGO_PKG_VERSION"))),
        ),
        (CONTAINS_GROUP_KINDS.to_owned(), Some(join(&members.kinds))),
        (
            ADDITIONAL_NAMESPACES.to_owned(),
            Some(join(&members.namespaces)),
        ),
        (
            SECRETS.to_owned(),
            (!members.secrets.is_empty()).then(|| join(&members.secrets)),
        ),
    ]);
    (labels, annotations)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kubectl's own test vector (apply_test.go): Secret my-set in namespace test.
    #[test]
    fn the_id_is_computed_as_kubectl_does() {
        assert_eq!(
            parent_id("my-set", "test", "Secret", ""),
            "applyset-0eFHV8ySqp7XoShsGvyWFQD3s96yqwHmzc4e0HR1dsY-v1"
        );
        let digest = Sha256::digest(b"cp1..ControlPlane.tenancy.kflex.kubestellar.org");
        let expected = format!(
            "applyset-{}-v1",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        );
        assert_eq!(applyset_id("cp1"), expected);
    }

    #[test]
    fn members_in_the_system_namespace_have_no_owner() {
        let spec = serde_json::from_value(json!({"type": "k8s"})).expect("spec");
        let cp = ControlPlane::new("cp1", spec);
        let manifest = |namespace: &str| {
            Manifest::new(
                "test",
                json!({"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "a", "namespace": namespace}}),
            )
            .expect("a manifest")
        };
        let mut manifests = vec![manifest("cp1-system"), manifest("kubeflex-system")];
        decorate(&mut manifests, &cp, "kubeflex-system");
        assert!(manifests[0].object()["metadata"]["ownerReferences"].is_array());
        assert!(
            manifests[1].object()["metadata"]
                .get("ownerReferences")
                .is_none()
        );
        for manifest in &manifests {
            assert_eq!(manifest.label(PART_OF), Some(applyset_id("cp1").as_str()));
        }
    }
}
