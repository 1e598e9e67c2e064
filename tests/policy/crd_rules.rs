//! The ControlPlane CRD refuses what `kflex render` refuses, and with the same field: its
//! OpenAPI bounds and CEL rules (`crates/kflex-core/src/api/crd.rs`, the schemars and x_kube
//! attributes of the types) are evaluated by `tests/crd/cel_check.py` with cel-python, case by
//! case, next to `validate_control_plane`'s verdict on the same object. Transition rules (an
//! update: `spec.type` and `spec.backend` are immutable) have no render-time counterpart and are
//! checked against the verdict they must give.
//!
//! cel-python comes from the Python named by `KFLEX_CEL_PYTHON` (`.ci/run` sets it), else
//! `python3`; without it the test says it was skipped, unless the variable was set, when it fails.

use kflex_core::api::{ControlPlane, validate_control_plane};
use serde_json::{Value, json};

struct Case {
    name: &'static str,
    object: Value,
    old: Option<Value>,
    /// `None`: admitted; else the field the refusal names.
    refused: Option<&'static str>,
}

fn cp(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1", "kind": "ControlPlane",
           "metadata": {"name": name}, "spec": spec})
}

fn create(name: &'static str, object: Value, refused: Option<&'static str>) -> Case {
    Case {
        name,
        object,
        old: None,
        refused,
    }
}

fn update(name: &'static str, old: Value, object: Value, refused: Option<&'static str>) -> Case {
    Case {
        name,
        object,
        old: Some(old),
        refused,
    }
}

fn cases() -> Vec<Case> {
    let external = |name: &str, secret: &str, namespace: &str| {
        cp(
            name,
            json!({"type": "external", "bootstrapSecretRef":
                {"name": secret, "namespace": namespace, "inClusterKey": "kubeconfig"}}),
        )
    };
    vec![
        create("k8s", cp("cp1", json!({"type": "k8s"})), None),
        create(
            "k8s with three API servers",
            cp("cp1", json!({"type": "k8s", "replicas": 3})),
            None,
        ),
        create(
            "replicas 0",
            cp("cp1", json!({"type": "k8s", "replicas": 0})),
            Some("spec.replicas"),
        ),
        create(
            "replicas -1",
            cp("cp1", json!({"type": "k8s", "replicas": -1})),
            Some("spec.replicas"),
        ),
        create(
            "replicas 2 on k3s",
            cp("edge", json!({"type": "k3s", "replicas": 2})),
            Some("spec.replicas"),
        ),
        create(
            "replicas 1 on k3s",
            cp("edge", json!({"type": "k3s", "replicas": 1})),
            None,
        ),
        create(
            "replicas 3 on vcluster",
            cp("vc", json!({"type": "vcluster", "replicas": 3})),
            Some("spec.replicas"),
        ),
        create(
            "replicas 2 on host",
            cp("h", json!({"type": "host", "replicas": 2})),
            Some("spec.replicas"),
        ),
        create(
            "dedicated k8s",
            cp("cp1", json!({"type": "k8s", "backend": "dedicated"})),
            None,
        ),
        create(
            "dedicated on vcluster",
            cp("vc", json!({"type": "vcluster", "backend": "dedicated"})),
            Some("spec.backend"),
        ),
        create(
            "dedicated on k3s",
            cp("edge", json!({"type": "k3s", "backend": "dedicated"})),
            Some("spec.backend"),
        ),
        create(
            "shared on vcluster (KubeFlex's CLI writes it)",
            cp("vc", json!({"type": "vcluster", "backend": "shared"})),
            None,
        ),
        create(
            "an unknown backend",
            cp("cp1", json!({"type": "k8s", "backend": "own"})),
            Some("spec.backend"),
        ),
        create(
            "backups of a k8s control plane",
            cp(
                "cp1",
                json!({"type": "k8s", "backup": {"schedule": "17 3 * * *", "retention": 14,
                                                        "storage": "offsite"}}),
            ),
            None,
        ),
        create(
            "backups on @daily",
            cp(
                "cp1",
                json!({"type": "k8s", "backup": {"schedule": "@daily"}}),
            ),
            None,
        ),
        create(
            "backups of a host control plane",
            cp(
                "h",
                json!({"type": "host", "backup": {"schedule": "@daily"}}),
            ),
            Some("spec.backup"),
        ),
        create(
            "backups of an external control plane",
            cp(
                "ext",
                json!({"type": "external", "backup": {"schedule": "@daily"},
                "bootstrapSecretRef": {"name": "ext-bootstrap", "namespace": "kubeflex-system",
                                       "inClusterKey": "kubeconfig"}}),
            ),
            Some("spec.backup"),
        ),
        create(
            "backups of a vcluster control plane (not yet)",
            cp(
                "vc",
                json!({"type": "vcluster", "backup": {"schedule": "@daily"}}),
            ),
            Some("spec.backup"),
        ),
        create(
            "a schedule of one field",
            cp(
                "cp1",
                json!({"type": "k8s", "backup": {"schedule": "daily"}}),
            ),
            Some("spec.backup.schedule"),
        ),
        create(
            "an unknown descriptor",
            cp(
                "cp1",
                json!({"type": "k8s", "backup": {"schedule": "@fortnightly"}}),
            ),
            Some("spec.backup.schedule"),
        ),
        create(
            "retention 0",
            cp(
                "cp1",
                json!({"type": "k8s", "backup": {"schedule": "@daily", "retention": 0}}),
            ),
            Some("spec.backup.retention"),
        ),
        create(
            "retention 1001",
            cp(
                "cp1",
                json!({"type": "k8s", "backup": {"schedule": "@daily", "retention": 1001}}),
            ),
            Some("spec.backup.retention"),
        ),
        create(
            "a storage name with a slash",
            cp(
                "cp1",
                json!({"type": "k8s", "backup": {"schedule": "@daily", "storage": "a/b"}}),
            ),
            Some("spec.backup.storage"),
        ),
        create(
            "a restore of a k8s control plane",
            cp(
                "cp1",
                json!({"type": "k8s", "restoreFrom": {"controlPlane": "cp1",
                                                             "backup": "20261203-021700-k3x9qa"}}),
            ),
            None,
        ),
        create(
            "a restore of a k3s control plane",
            cp(
                "edge",
                json!({"type": "k3s", "restoreFrom": {"controlPlane": "edge", "backup": "b1"}}),
            ),
            Some("spec.restoreFrom"),
        ),
        create(
            "a backup name with a path",
            cp(
                "cp1",
                json!({"type": "k8s", "restoreFrom": {"controlPlane": "cp1", "backup": "../cp2/b1"}}),
            ),
            Some("spec.restoreFrom.backup"),
        ),
        create(
            "a source that is no control-plane name",
            cp(
                "cp1",
                json!({"type": "k8s", "restoreFrom": {"controlPlane": "Prod", "backup": "b1"}}),
            ),
            Some("spec.restoreFrom.controlPlane"),
        ),
        create(
            "external without its Secret",
            cp("ext", json!({"type": "external"})),
            Some("spec"),
        ),
        create(
            "external with its own Secret",
            external("ext", "ext-bootstrap", "kubeflex-system"),
            None,
        ),
        create(
            "a name of 57 characters",
            cp(&format!("a{}", "b".repeat(56)), json!({"type": "k8s"})),
            Some(""),
        ),
        create(
            "a reserved database name",
            cp("postgres", json!({"type": "k8s"})),
            Some(""),
        ),
        create(
            "a short token lifetime",
            cp("h", json!({"type": "host", "tokenExpirationSeconds": 60})),
            Some("spec.tokenExpirationSeconds"),
        ),
        update(
            "backend absent, then shared",
            cp("cp1", json!({"type": "k8s"})),
            cp("cp1", json!({"type": "k8s", "backend": "shared"})),
            None,
        ),
        update(
            "backend shared, then absent",
            cp("cp1", json!({"type": "k8s", "backend": "shared"})),
            cp("cp1", json!({"type": "k8s"})),
            None,
        ),
        update(
            "backend absent (a KubeFlex object), then dedicated",
            cp("cp1", json!({"type": "k8s"})),
            cp("cp1", json!({"type": "k8s", "backend": "dedicated"})),
            Some("spec.backend"),
        ),
        update(
            "backend dedicated, then shared",
            cp("cp1", json!({"type": "k8s", "backend": "dedicated"})),
            cp("cp1", json!({"type": "k8s", "backend": "shared"})),
            Some("spec.backend"),
        ),
        update(
            "backend dedicated, then absent",
            cp("cp1", json!({"type": "k8s", "backend": "dedicated"})),
            cp("cp1", json!({"type": "k8s"})),
            Some("spec.backend"),
        ),
        update(
            "backend dedicated, unchanged, replicas scaled",
            cp(
                "cp1",
                json!({"type": "k8s", "backend": "dedicated", "replicas": 3}),
            ),
            cp(
                "cp1",
                json!({"type": "k8s", "backend": "dedicated", "replicas": 2}),
            ),
            None,
        ),
        update(
            "restoreFrom added after creation",
            cp("cp1", json!({"type": "k8s"})),
            cp(
                "cp1",
                json!({"type": "k8s", "restoreFrom": {"controlPlane": "cp1", "backup": "b1"}}),
            ),
            Some("spec.restoreFrom"),
        ),
        update(
            "restoreFrom changed",
            cp(
                "cp1",
                json!({"type": "k8s", "restoreFrom": {"controlPlane": "cp1", "backup": "b1"}}),
            ),
            cp(
                "cp1",
                json!({"type": "k8s", "restoreFrom": {"controlPlane": "cp1", "backup": "b2"}}),
            ),
            Some("spec.restoreFrom"),
        ),
        update(
            "restoreFrom removed",
            cp(
                "cp1",
                json!({"type": "k8s", "restoreFrom": {"controlPlane": "cp1", "backup": "b1"}}),
            ),
            cp("cp1", json!({"type": "k8s"})),
            Some("spec.restoreFrom"),
        ),
        update(
            "restoreFrom kept, a backup schedule added",
            cp(
                "cp1",
                json!({"type": "k8s", "restoreFrom": {"controlPlane": "cp1", "backup": "b1"}}),
            ),
            cp(
                "cp1",
                json!({"type": "k8s", "restoreFrom": {"controlPlane": "cp1", "backup": "b1"},
                             "backup": {"schedule": "@daily"}}),
            ),
            None,
        ),
        update(
            "type changed",
            cp("cp1", json!({"type": "k8s"})),
            cp("cp1", json!({"type": "k3s"})),
            Some("spec.type"),
        ),
    ]
}

#[test]
fn the_crd_refuses_what_render_refuses_with_the_same_field() {
    let Some(python) = crate::cel_python("the_crd_refuses_what_render_refuses_with_the_same_field")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let crds = kflex_core::api::crds().expect("the CRDs");
    let stream: String = crds
        .iter()
        .map(|crd| format!("---\n{}\n", serde_json::to_string(crd).expect("JSON")))
        .collect();
    std::fs::write(dir.path().join("crds.yaml"), stream).expect("written");
    let cases = cases();
    let input: Vec<Value> = cases
        .iter()
        .map(|case| json!({"name": case.name, "object": case.object, "old": case.old}))
        .collect();
    std::fs::write(
        dir.path().join("cases.json"),
        serde_json::to_string(&input).expect("JSON"),
    )
    .expect("written");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/crd/cel_check.py");
    let output = std::process::Command::new(&python)
        .arg(script)
        .arg(dir.path().join("crds.yaml"))
        .arg(dir.path().join("cases.json"))
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdicts: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(verdicts.len(), cases.len());
    let mut failures = Vec::new();
    for (case, verdict) in cases.iter().zip(&verdicts) {
        let refusals = verdict["refusals"].as_array().expect("refusals");
        let paths: Vec<&str> = refusals
            .iter()
            .map(|r| r["path"].as_str().expect("a path"))
            .collect();
        match case.refused {
            None if !refusals.is_empty() => {
                failures.push(format!("{}: the CRD refuses it: {refusals:?}", case.name));
            }
            Some(field) if !paths.contains(&field) => failures.push(format!(
                "{}: the CRD should refuse {field:?}, refuses {refusals:?}",
                case.name
            )),
            _ => {}
        }
        if case.old.is_some() {
            continue;
        }
        // The same object at render time: refused alike, naming the same field (the root
        // rules on metadata.name have no field path in the CRD).
        let parsed: ControlPlane = match serde_json::from_value(case.object.clone()) {
            Ok(parsed) => parsed,
            Err(err) => {
                // Not a ControlPlane kflex can read (an unknown enum value): refused as input.
                if case.refused.is_none() {
                    failures.push(format!("{}: kflex cannot read it: {err}", case.name));
                }
                continue;
            }
        };
        match (validate_control_plane(&parsed), case.refused) {
            (Ok(()), None) => {}
            (Ok(()), Some(field)) => failures.push(format!(
                "{}: the CRD refuses {field:?} but kflex render accepts it",
                case.name
            )),
            (Err(err), None) => failures.push(format!(
                "{}: kflex render refuses it ({err}) but the CRD accepts it",
                case.name
            )),
            (Err(err), Some(field)) => {
                let matches = field.is_empty() && err.field == "metadata.name"
                    || err.field == field
                    || (field == "spec" && err.field.starts_with("spec."));
                if !matches {
                    failures.push(format!(
                        "{}: kflex render names {:?}, the CRD {field:?}",
                        case.name, err.field
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
