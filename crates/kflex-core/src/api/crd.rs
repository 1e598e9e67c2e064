//! The two CRDs, generated from the Rust types. The one rule kube-derive cannot attach (a CEL rule
//! on `metadata.name`, which only the root schema may reference) is added here.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_core::CustomResourceExt;
use serde_json::{Value, json};

use super::validate::{
    MAX_CONTROL_PLANE_NAME_LEN, RESERVED_DATABASE_NAMES, RESERVED_DATABASE_PREFIX, RESERVED_NAMES,
};
use super::{ControlPlane, PostCreateHook};
use crate::settings::SYSTEM_NAMESPACE;

/// A CRD could not be turned into a plain object.
#[derive(Debug, thiserror::Error)]
#[error("failed to build CustomResourceDefinition {name}: {reason}")]
pub struct CrdError {
    name: String,
    reason: String,
}

/// Both CRDs as JSON objects, ControlPlane first.
pub fn crds() -> Result<Vec<Value>, CrdError> {
    let mut control_planes = to_object(ControlPlane::crd())?;
    add_name_rule(&mut control_planes)?;
    // kubectl accepts a custom resource as an ApplySet parent only when its CRD says so; the
    // controller makes every ControlPlane the parent of what it applies.
    control_planes["metadata"]["labels"] = json!({"applyset.kubernetes.io/is-parent-type": "true"});
    let hooks = to_object(PostCreateHook::crd())?;
    Ok(vec![control_planes, hooks])
}

fn to_object(crd: CustomResourceDefinition) -> Result<Value, CrdError> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    serde_json::to_value(crd).map_err(|source| CrdError {
        name,
        reason: source.to_string(),
    })
}

/// The rules on `metadata.name`, which only the root schema may reference: `<cp>-system` must be
/// a namespace and `<cp>` a Service (a DNS-1035 label of at most 56), neither may take over a
/// system namespace, a k8s control plane's database must not be one of PostgreSQL's own, and
/// an external control plane's bootstrap Secret is its own (`<cp>-bootstrap` in kubeflex-system,
/// or any in `<cp>-system`).
fn add_name_rule(crd: &mut Value) -> Result<(), CrdError> {
    let quoted = |names: &mut dyn Iterator<Item = &str>| {
        names
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let reserved = quoted(&mut RESERVED_NAMES.iter().map(|(name, _)| *name));
    let databases = quoted(&mut RESERVED_DATABASE_NAMES.iter().copied());
    let reserved_rule = json!({
        "rule": format!("!(self.metadata.name in [{reserved}])"),
        "message": "metadata.name is reserved: <name>-system would be kube-system or kubeflex-system",
    });
    let database_rule = json!({
        "rule": format!(
            "self.spec.type != 'k8s' || !(self.metadata.name in [{databases}] || \
             self.metadata.name.startsWith('{RESERVED_DATABASE_PREFIX}'))"
        ),
        "message": "metadata.name is reserved for type k8s: its PostgreSQL database and role \
                    (the name with '-' replaced by '_') would be one PostgreSQL reserves",
    });
    let rule = json!({
        "rule": format!(
            "self.metadata.name.size() <= {MAX_CONTROL_PLANE_NAME_LEN} && \
             self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')"
        ),
        "message": format!(
            "metadata.name must be a DNS-1035 label of at most {MAX_CONTROL_PLANE_NAME_LEN} \
             characters (lower-case letters, digits and '-', starting with a letter), so that \
             <name>-system is a valid namespace and <name> a valid Service name"
        ),
    });
    let bootstrap_rule = json!({
        "rule": format!(
            "!has(self.spec.bootstrapSecretRef) || \
             (self.spec.bootstrapSecretRef.namespace == '{SYSTEM_NAMESPACE}' && \
              self.spec.bootstrapSecretRef.name == self.metadata.name + '-bootstrap') || \
             self.spec.bootstrapSecretRef.namespace == self.metadata.name + '-system'"
        ),
        "message": format!(
            "spec.bootstrapSecretRef must name Secret <name>-bootstrap in {SYSTEM_NAMESPACE}, or \
             a Secret in <name>-system"
        ),
    });
    let root = crd
        .pointer_mut("/spec/versions/0/schema/openAPIV3Schema")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| CrdError {
            name: "controlplanes.tenancy.kflex.kubestellar.org".to_owned(),
            reason: "the generated CRD has no openAPIV3Schema".to_owned(),
        })?;
    root.insert(
        "x-kubernetes-validations".to_owned(),
        json!([rule, reserved_rule, database_rule, bootstrap_rule]),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(crd: &Value) -> &Value {
        crd.pointer("/spec/versions/0/schema/openAPIV3Schema")
            .unwrap()
    }

    #[test]
    fn control_plane_crd_keeps_kubeflex_names_columns_and_status() {
        let crds = crds().unwrap();
        let cp = &crds[0];
        assert_eq!(
            cp["metadata"]["name"],
            "controlplanes.tenancy.kflex.kubestellar.org"
        );
        assert_eq!(cp["spec"]["scope"], "Cluster");
        assert_eq!(
            cp["metadata"]["labels"]["applyset.kubernetes.io/is-parent-type"],
            "true"
        );
        assert_eq!(cp["spec"]["names"]["shortNames"], json!(["cp", "cps"]));
        let columns: Vec<&str> = cp["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(columns, ["SYNCED", "READY", "TYPE", "AGE"]);
        assert_eq!(
            cp["spec"]["versions"][0]["subresources"]["status"],
            json!({})
        );
        let spec = &schema(cp)["properties"]["spec"]["properties"];
        for field in [
            "type",
            "backend",
            "bootstrapSecretRef",
            "tokenExpirationSeconds",
            "postCreateHook",
            "postCreateHookVars",
            "postCreateHooks",
            "globalVars",
            "waitForPostCreateHooks",
            "kubernetesVersion",
            "replicas",
        ] {
            assert!(spec.get(field).is_some(), "spec.{field} is missing");
        }
        assert_eq!(spec["replicas"]["minimum"], 1.0);
        assert_eq!(
            spec["backend"]["enum"],
            json!(["shared", "dedicated", null])
        );
        assert_eq!(spec["tokenExpirationSeconds"]["default"], 31_536_000);
        assert_eq!(spec["waitForPostCreateHooks"]["default"], false);
        assert_eq!(
            spec["type"]["enum"],
            json!(["k8s", "ocm", "vcluster", "host", "external", "k3s"])
        );
    }

    #[test]
    fn control_plane_crd_carries_the_cel_rules() {
        let crds = crds().unwrap();
        let root = schema(&crds[0]);
        let name_rule = root["x-kubernetes-validations"][0]["rule"]
            .as_str()
            .unwrap();
        assert!(name_rule.contains("size() <= 56"), "{name_rule}");
        let bootstrap_rule = root["x-kubernetes-validations"][3]["rule"]
            .as_str()
            .unwrap();
        assert!(
            bootstrap_rule.contains("self.metadata.name + '-bootstrap'"),
            "{bootstrap_rule}"
        );
        let spec = &root["properties"]["spec"];
        assert_eq!(
            spec["properties"]["type"]["x-kubernetes-validations"][0]["rule"],
            "self == oldSelf"
        );
        assert!(
            spec["x-kubernetes-validations"][0]["rule"]
                .as_str()
                .unwrap()
                .contains("has(self.bootstrapSecretRef)")
        );
        // Each rule of spec names the field it is about, and backend's change is a transition
        // rule that reads an absent backend as shared (KubeFlex objects never set it).
        let rules = spec["x-kubernetes-validations"].as_array().unwrap();
        let by_path = |path: &str| -> Vec<&str> {
            rules
                .iter()
                .filter(|r| r["fieldPath"] == path)
                .map(|r| r["rule"].as_str().unwrap())
                .collect()
        };
        assert_eq!(by_path(".replicas").len(), 1);
        let backend = by_path(".backend");
        assert_eq!(backend.len(), 2);
        assert!(
            backend[1].contains("oldSelf") && backend[1].contains("'shared'"),
            "{backend:?}"
        );
    }

    #[test]
    fn hook_templates_are_embedded_resources() {
        let crds = crds().unwrap();
        let hook = &crds[1];
        assert_eq!(hook["spec"]["names"]["shortNames"], json!(["pch", "pchs"]));
        let items = &schema(hook)["properties"]["spec"]["properties"]["templates"]["items"];
        assert_eq!(items["x-kubernetes-embedded-resource"], true);
        assert_eq!(items["x-kubernetes-preserve-unknown-fields"], true);
    }
}
