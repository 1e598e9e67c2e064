//! Writing rendered manifests: one stream on stdout, or one file per object in a directory.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use kflex_core::manifest::{Manifest, file_name, to_json_list, to_yaml_stream};
use kflex_core::render::Rendered;

/// Prints every rendered object to stdout as one YAML stream or one JSON `v1/List`, in a single
/// write after everything is formatted.
pub fn print(outputs: &[Rendered], json: bool) -> anyhow::Result<()> {
    let manifests: Vec<Manifest> = outputs
        .iter()
        .flat_map(|o| o.manifests.iter().cloned())
        .collect();
    let text = if json {
        to_json_list(&manifests)?
    } else {
        to_yaml_stream(&manifests)?
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // The reader went away (`| head`); nothing is left to tell it.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("failed to write to stdout"),
    }
}

/// Writes `dir/<set>/<object file>` for every rendered set (`system` or the control plane's
/// name), with a `kustomization.yaml` listing the files in install order. Each set's directory
/// is replaced as a whole, so objects that are no longer rendered disappear from it.
pub fn write_dir(dir: &Path, outputs: &[Rendered], json: bool) -> anyhow::Result<()> {
    let mut prepared = Vec::with_capacity(outputs.len());
    for rendered in outputs {
        let mut files = Vec::with_capacity(rendered.manifests.len());
        for manifest in &rendered.manifests {
            let single = std::slice::from_ref(manifest);
            let (name, text) = if json {
                let name = file_name(manifest).replace(".yaml", ".json");
                (name, to_json_object(manifest)?)
            } else {
                (
                    file_name(manifest),
                    strip_separator(&to_yaml_stream(single)?),
                )
            };
            files.push((name, text));
        }
        let resources: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
        let kustomization = format!(
            "# Written by kflex render: the objects of this directory in install order.\n\
             apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n{}",
            resources
                .iter()
                .map(|r| format!("- {r}\n"))
                .collect::<String>()
        );
        files.push(("kustomization.yaml".to_owned(), kustomization));
        prepared.push((
            crate::cli::output_directory_name(rendered).to_owned(),
            files,
        ));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    for (set, files) in prepared {
        replace_directory(&dir.join(&set), &files)
            .with_context(|| format!("failed to write {}", dir.join(&set).display()))?;
    }
    Ok(())
}

fn to_json_object(manifest: &Manifest) -> anyhow::Result<String> {
    let list = to_json_list(std::slice::from_ref(manifest))?;
    let value: serde_json::Value = serde_json::from_str(&list)?;
    let mut text = serde_json::to_string_pretty(&value["items"][0])?;
    text.push('\n');
    Ok(text)
}

/// A single-document stream without its leading `---`, as a file of its own.
fn strip_separator(stream: &str) -> String {
    stream.strip_prefix("---\n").unwrap_or(stream).to_owned()
}

/// Writes `files` into a fresh sibling directory, then swaps it in for `target`.
fn replace_directory(target: &Path, files: &[(String, String)]) -> anyhow::Result<()> {
    let parent = target
        .parent()
        .context("the output directory has no parent")?;
    let name = target
        .file_name()
        .context("the output directory has no name")?
        .to_string_lossy();
    let staging = parent.join(format!(".{name}.kflex-tmp"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir(&staging)?;
    for (file, text) in files {
        std::fs::write(staging.join(file), text)?;
    }
    if target.is_file() {
        bail!("{} exists and is a file", target.display());
    }
    if target.exists() {
        std::fs::remove_dir_all(target)?;
    }
    std::fs::rename(&staging, target)?;
    Ok(())
}
