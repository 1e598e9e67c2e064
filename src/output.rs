//! Writing rendered manifests: one stream on stdout, or one file per object in a directory.
//! Formatting ([`finish`]) happens where the objects were rendered (on worker threads);
//! [`write()`] then writes everything at once, so an error leaves stdout empty.
//!
//! A directory is a mirror of one run: each set's directory is replaced as a whole, and a set
//! directory an earlier run wrote that this run does not render (a ControlPlane removed from the
//! input) is removed, so GitOps tools reading the directory never apply stale objects. kflex
//! recognises its own set directories by the first line of their `kustomization.yaml`; anything
//! else in the directory is left alone.

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
            let name = file_name(manifest);
            let stem = name.strip_suffix(".yaml").unwrap_or(&name);
            files.push((format!("{stem}.json"), text));
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
        KUSTOMIZATION.to_owned(),
        format!(
            "{MARKER}: the objects of this directory in install order.\n\
             apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n{resources}"
        ),
    ));
    Ok(files)
}

/// The file listing a set's objects, which Flux, kustomize and `kubectl apply -k` read.
const KUSTOMIZATION: &str = "kustomization.yaml";
/// How a set's `kustomization.yaml` starts: marks the directory as kflex's to replace or remove.
const MARKER: &str = "# Written by kflex render";
/// Suffix of the directory a set is written to before it replaces the old one.
const STAGING_SUFFIX: &str = ".kflex-tmp";

/// Replaces `dir/<set>` by each set's files, then removes the set directories of earlier runs
/// that this run did not render.
fn write_dir(dir: &Path, sets: Vec<(String, Formatted)>) -> anyhow::Result<()> {
    let mut names: Vec<String> = sets.iter().map(|(name, _)| name.clone()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        bail!(
            "two rendered sets would both be written to {}: rename the control plane {:?} or \
             render the system manifests to another directory",
            dir.join(&pair[0]).display(),
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
    remove_stale_sets(dir, &names)
}

/// Removes what earlier runs left in `dir` that this run (which wrote `written`) did not
/// render: set directories marked as kflex's, and interrupted staging directories.
fn remove_stale_sets(dir: &Path, written: &[String]) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("failed to read {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to read {}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // Never follow a symlink out of the directory.
        if !entry.file_type().is_ok_and(|t| t.is_dir()) || written.contains(&name) {
            continue;
        }
        let staging = name.starts_with('.') && name.ends_with(STAGING_SUFFIX);
        if staging || is_kflex_set(&path) {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("failed to remove stale {}", path.display()))?;
        }
    }
    Ok(())
}

/// Whether `path` is a set directory kflex wrote.
fn is_kflex_set(path: &Path) -> bool {
    std::fs::read_to_string(path.join(KUSTOMIZATION)).is_ok_and(|text| text.starts_with(MARKER))
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
    let staging = parent.join(format!(".{name}{STAGING_SUFFIX}"));
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
