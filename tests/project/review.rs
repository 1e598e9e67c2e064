//! The example pull-request workflow (examples/github/render-diff.yaml) renders with a command
//! line the kflex binary accepts, in both of the layouts it documents.

use std::path::Path;

use serde_json::Value;

fn workflow() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/github/render-diff.yaml");
    let text = std::fs::read_to_string(&path).expect("readable");
    serde_saphyr::from_str(&text).expect("YAML")
}

#[test]
fn the_render_diff_workflow_runs_commands_kflex_accepts() {
    let workflow = workflow();
    let args = workflow["env"]["RENDER_ARGS"]
        .as_str()
        .expect("RENDER_ARGS");
    let image = workflow["env"]["KFLEX_IMAGE"]
        .as_str()
        .expect("KFLEX_IMAGE");
    assert!(image.starts_with("ghcr.io/kubestellar/kflex:"), "{image}");
    // The workflow appends --output-dir; the Argo CD layout it documents uses --argocd.
    for command in [args, "render --argocd"] {
        let mut line: Vec<&str> = command.split_whitespace().collect();
        line.extend(["--output-dir", "/out/head"]);
        kflex::cli::accepts(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    }
    let steps = workflow["jobs"]["render-diff"]["steps"]
        .as_array()
        .expect("steps");
    let script = |name: &str| {
        steps
            .iter()
            .find(|s| s["name"] == name)
            .and_then(|s| s["run"].as_str())
            .unwrap_or_else(|| panic!("step {name}"))
            .to_owned()
    };
    assert!(script("Render both revisions").contains("--output-dir \"/out/$rev\""));
    assert!(script("Compare").contains("diff -ruN base head"));
    // The comment is found again by the marker the Compare step writes.
    let marker = "<!-- kflex-render-diff -->";
    assert!(script("Compare").contains(marker));
    assert!(script("Comment on the pull request").contains(marker));
}
