//! Writing rendered manifests: one stream on stdout, or one file per object in a directory.
//! Formatting ([`finish`]) happens where the objects were rendered (on worker threads);
//! [`write`] then writes everything at once, so an error leaves stdout empty.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use kflex_core::manifest::{EmitError, Manifest, file_name, to_json_list, to_yaml_stream};

/// Where and how output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub json: bool,
    /// `None` for stdout.
    pub dir: Option<PathBuf>,
}

/// One rendered set (`system` or a control plane), ready to be written.
#[derive(Debug)]
pub enum Formatted {
    /// A YAML stream, for stdout.
    Yaml(String),
    /// Objects kept for a single JSON list on stdout.
    Objects(Vec<Manifest>),
    /// File name and content, for a directory.
    Files(Vec<(String, String)>),
}

/// Formats one set's objects for `target`.
pub fn finish(manifests: Vec<Manifest>, target: &Target) -> Result<Formatted, EmitError> {
    match (&target.dir, target.json) {
        (None, false) => to_yaml_stream(&manifests).map(Formatted::Yaml),
        (None, true) => Ok(Formatted::Objects(manifests)),
        (Some(_), json) => files(&manifests, json).map(Formatted::Files),
    }
}

/// Writes every set: to stdout in one write, or each to `dir/<set name>/`.
pub fn write(target: &Target, sets: Vec<(String, Formatted)>) -> anyhow::Result<()> {
    match &target.dir {
        Some(dir) => write_dir(dir, sets),
        None => {
            let mut text = String::new();
            let mut objects = Vec::new();
            for (_, formatted) in sets {
                match formatted {
                    Formatted::Yaml(part) => text.push_str(&part),
                    Formatted::Objects(part) => objects.extend(part),
                    Formatted::Files(_) => bail!("files cannot be printed to stdout"),
                }
            }
            if target.json {
                text = to_json_list(&objects)?;
            }
            print(&text)
        }
    }
}

fn print(text: &str) -> anyhow::Result<()> {
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

/// One file per object with a stable name, plus a `kustomization.yaml` listing them in install
/// order.
fn files(manifests: &[Manifest], json: bool) -> Result<Vec<(String, String)>, EmitError> {
    let mut files = Vec::with_capacity(manifests.len() + 1);
    for manifest in manifests {
        let single = std::slice::from_ref(manifest);
        if json {
            let list = to_json_list(single)?;
            let item: serde_json::Value = serde_json::from_str(&list).map_err(EmitError::Json)?;
            let mut text =
                serde_json::to_string_pretty(&item["items"][0]).map_err(EmitError::Json)?;
            text.push('\n');
            files.push((file_name(manifest).replace(".yaml", ".json"), text));
        } else {
            let stream = to_yaml_stream(single)?;
            let text = stream.strip_prefix("---\n").unwrap_or(&stream).to_owned();
            files.push((file_name(manifest), text));
        }
    }
    let resources: String = files
        .iter()
        .map(|(name, _)| format!("- {name}\n"))
        .collect();
    files.push((
        "kustomization.yaml".to_owned(),
        format!(
            "# Written by kflex render: the objects of this directory in install order.\n\
             apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n{resources}"
        ),
    ));
    Ok(files)
}

/// Replaces `dir/<set>` by each set's files; sets not rendered this time are left alone.
fn write_dir(dir: &Path, sets: Vec<(String, Formatted)>) -> anyhow::Result<()> {
    let mut names: Vec<&str> = sets.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        bail!(
            "two rendered sets would both be written to {}: rename the control plane {:?} or \
             render the system manifests to another directory",
            dir.join(pair[0]).display(),
            pair[0]
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    for (set, formatted) in sets {
        let Formatted::Files(files) = formatted else {
            bail!("internal: set {set} was not formatted as files");
        };
        let target = dir.join(&set);
        replace_directory(&target, &files)
            .with_context(|| format!("failed to write {}", target.display()))?;
    }
    Ok(())
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
