//! The `PostCreateHook` kind: a named set of object templates applied for a control plane, with
//! KubeFlex's `{{.Var}}` placeholders.

use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::controlplane::ControlPlaneStatus;

/// A reusable set of templates. `templates` are arbitrary Kubernetes objects.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "tenancy.kflex.kubestellar.org",
    version = "v1alpha1",
    kind = "PostCreateHook",
    plural = "postcreatehooks",
    singular = "postcreatehook",
    shortname = "pch",
    shortname = "pchs",
    status = "PostCreateHookStatus",
    doc = "Objects to create for a control plane, with {{.Var}} placeholders.",
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    crates(kube_core = "::kube_core"),
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct PostCreateHookSpec {
    /// The objects to create, each a complete Kubernetes object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "embedded_objects")]
    pub templates: Vec<serde_json::Value>,

    /// Lowest-precedence values for the templates' variables, each named once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub default_vars: Vec<DefaultVar>,
}

/// A default value for one template variable.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct DefaultVar {
    pub name: String,
    pub value: String,
}

/// KubeFlex declares a status for hooks; kflex keeps the schema for compatibility.
pub type PostCreateHookStatus = ControlPlaneStatus;

/// Each template is an embedded resource: the API server checks `apiVersion`, `kind` and
/// `metadata` and keeps every other field.
fn embedded_objects(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "x-kubernetes-embedded-resource": true,
            "x-kubernetes-preserve-unknown-fields": true
        }
    })
}
