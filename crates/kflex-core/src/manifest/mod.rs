//! Rendered objects and their canonical form.
//!
//! A [`Manifest`] is one Kubernetes object plus the template or hook it came from. This module
//! owns what every rendered object must have (apiVersion, kind, metadata.name), how objects are
//! identified, the install order, and the canonical YAML/JSON emitted for them.

#[cfg(test)]
mod arbitrary;
mod emit;
mod order;
mod yaml_reader;
mod yaml_writer;

use std::fmt;

use serde_json::{Map, Value};

use crate::api::names;

pub use emit::{EmitError, file_name, to_json_list, to_yaml_document, to_yaml_stream};
pub use order::{InstallClass, install_class, sort_for_install};
pub(crate) use yaml_reader::read_documents;
pub(crate) use yaml_writer::write_scalar as yaml_scalar;

/// One rendered Kubernetes object.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    source: String,
    object: Map<String, Value>,
}

/// Identity of an object in a cluster: group, kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    /// Whether the object is of Kubernetes type `K` (kind and group, as [`Manifest::is`]).
    pub fn is<K: k8s_openapi::Resource>(&self) -> bool {
        self.kind == K::KIND && self.group == K::GROUP
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// A document is not a Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ShapeError {
    pub field: &'static str,
    pub reason: String,
}

impl Manifest {
    /// Wraps `object`, checking that it has the fields every object needs.
    pub fn new(source: impl Into<String>, object: Value) -> Result<Self, ShapeError> {
        let Value::Object(object) = object else {
            return Err(ShapeError {
                field: "(document)",
                reason: format!("must be a mapping, got {}", type_name(&object)),
            });
        };
        for field in ["apiVersion", "kind"] {
            match object.get(field) {
                Some(Value::String(text)) if !text.is_empty() => {}
                Some(other) => {
                    return Err(ShapeError {
                        field: if field == "kind" {
                            "kind"
                        } else {
                            "apiVersion"
                        },
                        reason: format!("must be a non-empty string, got {}", type_name(other)),
                    });
                }
                None => {
                    return Err(ShapeError {
                        field: if field == "kind" {
                            "kind"
                        } else {
                            "apiVersion"
                        },
                        reason: "is required".to_owned(),
                    });
                }
            }
        }
        let str_field = |field: &str| object.get(field).and_then(Value::as_str).unwrap_or("");
        let (api_version, kind) = (str_field("apiVersion"), str_field("kind"));
        if let Some(reason) = names::api_version(api_version) {
            return Err(ShapeError {
                field: "apiVersion",
                reason: format!("{}: {reason}", names::quoted(api_version)),
            });
        }
        if let Some(reason) = names::kind(kind) {
            return Err(ShapeError {
                field: "kind",
                reason: format!("{}: {reason}", names::quoted(kind)),
            });
        }
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        let metadata = object.get("metadata").and_then(Value::as_object);
        match metadata.and_then(|m| m.get("name")) {
            Some(Value::String(name)) if !name.is_empty() => {
                if let Some(reason) = object_name_problem(group, kind, name) {
                    return Err(ShapeError {
                        field: "metadata.name",
                        reason: format!("{}: {reason}", names::quoted(name)),
                    });
                }
            }
            _ if metadata.is_some_and(|m| m.contains_key("generateName")) => {
                return Err(ShapeError {
                    field: "metadata.generateName",
                    reason: "is not supported: applied objects need a fixed metadata.name"
                        .to_owned(),
                });
            }
            _ => {
                return Err(ShapeError {
                    field: "metadata.name",
                    reason: "is required and must be a non-empty string".to_owned(),
                });
            }
        }
        for (field, key) in [
            ("metadata.labels", "labels"),
            ("metadata.annotations", "annotations"),
        ] {
            match metadata.and_then(|m| m.get(key)) {
                None | Some(Value::Null) => {}
                Some(Value::Object(map)) => {
                    if let Some((name, value)) = map.iter().find(|(_, v)| !v.is_string()) {
                        return Err(ShapeError {
                            field,
                            reason: format!("{name:?} must be a string, got {}", type_name(value)),
                        });
                    }
                }
                Some(other) => {
                    return Err(ShapeError {
                        field,
                        reason: format!("must be a mapping, got {}", type_name(other)),
                    });
                }
            }
        }
        match metadata.and_then(|m| m.get("namespace")) {
            None | Some(Value::Null) => {}
            // Empty means "not given"; placement decides.
            Some(Value::String(namespace)) if namespace.is_empty() => {}
            Some(Value::String(namespace)) => {
                if let Some(reason) = names::dns1123_label(namespace) {
                    return Err(ShapeError {
                        field: "metadata.namespace",
                        reason: format!("{}: {reason}", names::quoted(namespace)),
                    });
                }
            }
            Some(other) => {
                return Err(ShapeError {
                    field: "metadata.namespace",
                    reason: format!("must be a string, got {}", type_name(other)),
                });
            }
        }
        Ok(Self {
            source: source.into(),
            object,
        })
    }

    /// The template or hook this object was rendered from.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn object(&self) -> &Map<String, Value> {
        &self.object
    }

    pub fn object_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.object
    }

    pub fn into_object(self) -> Map<String, Value> {
        self.object
    }

    pub fn api_version(&self) -> &str {
        self.str_field("apiVersion")
    }

    pub fn kind(&self) -> &str {
        self.str_field("kind")
    }

    /// Whether this is an object of Kubernetes type `K`: its kind in its group, so that a
    /// custom resource of kind `Job` in another group is not taken for a batch Job.
    pub fn is<K: k8s_openapi::Resource>(&self) -> bool {
        self.kind() == K::KIND && self.group() == K::GROUP
    }

    /// The API group: the part of apiVersion before `/`, empty for the core group.
    pub fn group(&self) -> &str {
        self.api_version()
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    pub fn name(&self) -> &str {
        self.metadata()
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.metadata()
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
    }

    pub fn set_namespace(&mut self, namespace: &str) {
        self.metadata_mut()
            .insert("namespace".to_owned(), Value::from(namespace));
    }

    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            group: self.group().to_owned(),
            kind: self.kind().to_owned(),
            namespace: self.namespace().map(str::to_owned),
            name: self.name().to_owned(),
        }
    }

    /// `metadata.labels`, created if absent.
    pub fn labels_mut(&mut self) -> &mut Map<String, Value> {
        submap(self.metadata_mut(), "labels")
    }

    /// `metadata.annotations`, created if absent.
    pub fn annotations_mut(&mut self) -> &mut Map<String, Value> {
        submap(self.metadata_mut(), "annotations")
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.metadata()
            .and_then(|m| m.get("labels"))
            .and_then(|labels| labels.get(key))
            .and_then(Value::as_str)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata()
            .and_then(|m| m.get("annotations"))
            .and_then(|annotations| annotations.get(key))
            .and_then(Value::as_str)
    }

    fn str_field(&self, field: &str) -> &str {
        self.object
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn metadata(&self) -> Option<&Map<String, Value>> {
        self.object.get("metadata").and_then(Value::as_object)
    }

    fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        submap(&mut self.object, "metadata")
    }
}

/// Why `name` cannot name an object of `kind` in `group`, as the API server would say: RBAC
/// objects take any path segment (`system:openshift:scc:privileged`), Namespaces are DNS-1123
/// labels, Services DNS-1035 labels, everything else (custom resources included) DNS-1123
/// subdomains.
fn object_name_problem(group: &str, kind: &str, name: &str) -> Option<String> {
    match (group, kind) {
        (
            "rbac.authorization.k8s.io",
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding",
        ) => names::path_segment_name(name),
        ("", "Namespace") => names::dns1123_label(name),
        ("", "Service") => names::dns1035_label(name),
        _ => names::dns1123_subdomain(name),
    }
}

/// `map[key]` as a mapping, replacing a missing or null value by an empty mapping.
pub(crate) fn submap<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(inner) => inner,
        _ => unreachable!("the slot was just made a mapping"),
    }
}

/// How a message names the JSON type of `value` ("a list", "a mapping").
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A kind is only the type it names in its own group: a hook's CRD may declare kind `Job`
    /// or `Secret` in a group of its own, and must not be treated (or trusted) as one.
    #[test]
    fn a_type_is_its_kind_in_its_group() {
        use k8s_openapi::api::batch::v1::Job;
        use k8s_openapi::api::core::v1::Secret;
        let object = |api_version: &str, kind: &str| {
            Manifest::new(
                "t",
                json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}),
            )
            .unwrap()
        };
        assert!(object("batch/v1", "Job").is::<Job>());
        assert!(!object("example.com/v1", "Job").is::<Job>());
        assert!(!object("batch/v1", "CronJob").is::<Job>());
        assert!(object("v1", "Secret").is::<Secret>());
        assert!(!object("evil.example.com/v1", "Secret").is::<Secret>());
        assert!(object("v1", "Secret").key().is::<Secret>());
        assert!(!object("evil.example.com/v1", "Secret").key().is::<Secret>());
    }

    #[test]
    fn objects_need_api_version_kind_and_name() {
        let ok = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}});
        let manifest = Manifest::new("t", ok).unwrap();
        assert_eq!(manifest.group(), "apps");
        assert_eq!(manifest.key().to_string(), "Deployment x");
        for (doc, field) in [
            (
                json!({"kind": "X", "metadata": {"name": "x"}}),
                "apiVersion",
            ),
            (
                json!({"apiVersion": "v1", "kind": 3, "metadata": {"name": "x"}}),
                "kind",
            ),
            (
                json!({"apiVersion": "v1", "kind": "X", "metadata": {}}),
                "metadata.name",
            ),
            (
                json!({"apiVersion": "v1", "kind": "X", "metadata": {"generateName": "x-"}}),
                "metadata.generateName",
            ),
            (
                json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x", "namespace": 1}}),
                "metadata.namespace",
            ),
            (json!(["a"]), "(document)"),
            (
                json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x", "labels": ["a"]}}),
                "metadata.labels",
            ),
            (
                json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x", "annotations": {"a": 1}}}),
                "metadata.annotations",
            ),
        ] {
            assert_eq!(Manifest::new("t", doc).unwrap_err().field, field);
        }
    }

    #[test]
    fn labels_and_annotations_are_created_on_demand() {
        let mut m = Manifest::new("t", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": null}})).unwrap();
        m.labels_mut().insert("a".into(), json!("b"));
        m.annotations_mut().insert("c".into(), json!("d"));
        m.set_namespace("ns");
        assert_eq!(m.label("a"), Some("b"));
        assert_eq!(m.annotation("c"), Some("d"));
        assert_eq!(m.key().to_string(), "ConfigMap ns/x");
    }
}
