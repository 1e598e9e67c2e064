//! The Flux example (examples/flux/): its committed `rendered/` directory is exactly what
//! `kflex render --output-dir` makes of its input today, so the example cannot go stale, and
//! the Flux objects next to it point at it. `KFLEX_UPDATE_GOLDEN=1` rewrites `rendered/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use similar::TextDiff;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const RENDERED: &str = "examples/flux/rendered";

/// The command examples/flux/README.md gives, run from the repository root.
fn render_into(out: &Path) {
    let output = Command::cargo_bin("kflex")
        .expect("binary built")
        .args([
            "render",
            "--system",
            "-R",
            "-f",
            "examples/flux/controlplanes",
        ])
        .arg("--output-dir")
        .arg(out)
        .current_dir(ROOT)
        .env_clear()
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout with --output-dir"
    );
}

/// Every file under `dir` by relative path, with its text.
fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, String>) {
        for entry in std::fs::read_dir(dir).expect("readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let text = std::fs::read_to_string(&path).expect("UTF-8 text");
                files.insert(
                    path.strip_prefix(root).expect("under root").to_owned(),
                    text,
                );
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

#[test]
fn the_committed_rendered_directory_is_what_kflex_renders() {
    let committed = Path::new(ROOT).join(RENDERED);
    if std::env::var_os("KFLEX_UPDATE_GOLDEN").is_some() {
        render_into(&committed);
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let fresh = scratch.path().join("rendered");
    render_into(&fresh);
    let (expected, actual) = (tree(&committed), tree(&fresh));
    let mut problems = Vec::new();
    for path in expected.keys().filter(|p| !actual.contains_key(*p)) {
        problems.push(format!("{} is no longer rendered", path.display()));
    }
    for (path, text) in &actual {
        match expected.get(path) {
            None => problems.push(format!("{} is missing", path.display())),
            Some(old) if old != text => problems.push(format!(
                "{} differs:\n{}",
                path.display(),
                TextDiff::from_lines(old, text)
                    .unified_diff()
                    .header("committed", "rendered")
            )),
            Some(_) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{RENDERED} is out of date (KFLEX_UPDATE_GOLDEN=1 cargo test --test flux rewrites it):\n{}",
        problems.join("\n")
    );
    // Rendering again into the same directory changes nothing: file names are stable.
    render_into(&fresh);
    assert_eq!(tree(&fresh), actual);
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("readable");
    serde_saphyr::from_multiple(&text).expect("YAML")
}

#[test]
fn the_flux_objects_apply_the_rendered_directory() {
    let cluster = Path::new(ROOT).join("examples/flux/cluster");
    let source = &yaml_documents(&cluster.join("source.yaml"))[0];
    let sync = &yaml_documents(&cluster.join("sync.yaml"))[0];
    assert_eq!(source["kind"], "GitRepository");
    assert_eq!(sync["kind"], "Kustomization");
    assert_eq!(sync["spec"]["sourceRef"]["kind"], "GitRepository");
    assert_eq!(
        sync["spec"]["sourceRef"]["name"],
        source["metadata"]["name"]
    );
    assert_eq!(sync["spec"]["path"], format!("./{RENDERED}"));
    assert_eq!(sync["spec"]["prune"], true);
    let oci = yaml_documents(&cluster.join("oci.yaml"));
    assert_eq!(oci[0]["kind"], "OCIRepository");
    assert_eq!(oci[1]["spec"]["sourceRef"]["kind"], "OCIRepository");
    assert_eq!(
        oci[1]["spec"]["sourceRef"]["name"],
        oci[0]["metadata"]["name"]
    );

    // The hook's shell script is protected from the substitution sync.yaml turns on.
    assert!(sync["spec"]["postBuild"]["substitute"].is_object());
    let job = &yaml_documents(
        &Path::new(ROOT)
            .join(RENDERED)
            .join("edge/job.batch_edge-system_tenant-namespaces.yaml"),
    )[0];
    assert_eq!(
        job["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/substitute"],
        "disabled"
    );
    assert_eq!(
        job["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/force"],
        "enabled"
    );
}
