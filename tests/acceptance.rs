//! The acceptance inputs (`tests/acceptance/`, a verbatim copy of the project's shared set that
//! `.ci/run` keeps in sync): KubeFlex ControlPlanes and hooks must render unchanged, and every
//! bad input must be refused with a non-zero exit, nothing on stdout and a message naming the
//! object, the field and the reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/acceptance")
}

fn kflex(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kflex"))
        .args(args)
        .current_dir(dir())
        .env_clear()
        .output()
        .expect("kflex runs")
}

fn yaml_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("directory exists")
        .map(|entry| entry.expect("readable").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .map(|path| {
            path.file_name()
                .expect("named")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    files
}

/// The object that shows a type's control plane was rendered: its workload, or for the types
/// without one, the Job that writes its kubeconfig.
fn workload_of(text: &str) -> (&'static str, &'static str) {
    let type_ = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("type: "))
        .expect("a ControlPlane with a type");
    match type_ {
        "k8s" => ("Deployment", "kube-apiserver"),
        "k3s" => ("StatefulSet", "k3s-server"),
        "vcluster" => ("StatefulSet", "vcluster"),
        "host" => ("Job", "kflex-bootstrap"),
        "external" => ("Job", "kflex-adopt"),
        other => panic!("no acceptance expectation for type {other}"),
    }
}

fn rendered_objects(stdout: &[u8]) -> Vec<serde_json::Value> {
    let text = String::from_utf8_lossy(stdout);
    serde_saphyr::from_multiple(&text).expect("output is YAML")
}

fn has_object(objects: &[serde_json::Value], kind: &str, namespace: &str, name: &str) -> bool {
    objects.iter().any(|o| {
        o["kind"] == kind
            && o["metadata"]["name"] == name
            && (kind == "Namespace" || o["metadata"]["namespace"] == namespace)
    })
}

#[test]
fn every_control_plane_renders_with_the_hooks_it_references() {
    let files = yaml_files(&dir());
    let hooks: Vec<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|f| f.starts_with("hook-"))
        .collect();
    let control_planes: Vec<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|f| f.starts_with("cp-"))
        .collect();
    assert!(control_planes.len() >= 7 && hooks.len() >= 2, "{files:?}");
    let mut all = vec!["render"];
    for file in control_planes {
        let text = std::fs::read_to_string(dir().join(file)).expect("readable");
        let name = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("name: "))
            .expect("a named ControlPlane");
        let mut args = vec!["render", "-f", file];
        for hook in &hooks {
            args.extend(["-f", hook]);
        }
        all.extend(["-f", file]);
        let output = kflex(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{file}: {stderr}");
        let objects = rendered_objects(&output.stdout);
        let namespace = format!("{name}-system");
        assert!(
            has_object(&objects, "Namespace", "", &namespace),
            "{file}: no namespace {namespace}"
        );
        let (kind, workload) = workload_of(&text);
        assert!(
            has_object(&objects, kind, &namespace, workload),
            "{file}: no {kind} {namespace}/{workload}"
        );
    }
    // Every acceptance control plane at once: they share nothing and there is one host.
    for hook in &hooks {
        all.extend(["-f", hook]);
    }
    let output = kflex(&all);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What each bad file's error must name: the object, the field and the reason.
const BAD: [(&str, &[&str]); 7] = [
    (
        "external-without-bootstrap.yaml",
        &[
            "ControlPlane \"ext2\"",
            "spec.bootstrapSecretRef",
            "required for type external",
        ],
    ),
    (
        "missing-hook.yaml",
        &[
            "ControlPlane \"cp3\"",
            "spec.postCreateHooks[0].hookName",
            "\"does-not-exist\"",
            "not in the input",
        ],
    ),
    (
        "name-too-long.yaml",
        &[
            "ControlPlane \"a23456789-",
            "metadata.name",
            "57 characters",
            "at most 56",
        ],
    ),
    (
        "name-uppercase.yaml",
        &[
            "ControlPlane \"Team.A\"",
            "metadata.name",
            "DNS-1035",
            "'T', '.', 'A'",
        ],
    ),
    (
        "not-yaml.yaml",
        &["bad/not-yaml.yaml", "not valid YAML", "line 5"],
    ),
    (
        "undefined-var.yaml",
        &[
            "ControlPlane \"cp4\"",
            "PostCreateHook \"uses-undefined\"",
            "metadata.name",
            "undefined variable \"Undefined\"",
        ],
    ),
    (
        "unknown-type.yaml",
        &["ControlPlane \"cp2\"", "spec.type", "unknown variant `k9s`"],
    ),
];

#[test]
fn every_bad_input_is_refused_with_object_field_and_reason() {
    let files = yaml_files(&dir().join("bad"));
    let covered: Vec<&str> = BAD.iter().map(|(file, _)| *file).collect();
    assert_eq!(
        files, covered,
        "every bad input needs its expected message here"
    );
    for (file, needles) in BAD {
        let path = format!("bad/{file}");
        let output = kflex(&["render", "-f", &path]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{file}: {stderr}");
        assert!(output.stdout.is_empty(), "{file}: stdout must stay empty");
        assert!(stderr.starts_with("error: "), "{file}: {stderr}");
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{file}: {needle:?} missing in\n{stderr}"
            );
        }
    }
}

#[test]
fn a_bad_file_among_good_ones_still_prints_nothing() {
    let output = kflex(&["render", "-f", "cp-k8s.yaml", "-f", "bad/missing-hook.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
}
