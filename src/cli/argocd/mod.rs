//! `kflex render --argocd`: the generate command of kflex's Argo CD config-management plugin
//! (examples/argocd/). Argo CD runs it in the Application's source directory with its build
//! environment; this module turns that directory and environment into what `kflex render`
//! renders: the ControlPlanes and PostCreateHooks found there, and the settings.
//!
//! Settings, lowest precedence first: the defaults; `KUBE_VERSION` (the destination cluster's
//! version, a detected fact that anything explicit overrides); what the plugin's operator set
//! for every Application (`--values`, `--set` and flags in plugin.yaml's command, `KFLEX_*` on
//! the sidecar); then what the Application says: `kflex.yaml` in its source directory, its plugin
//! env (`ARGOCD_ENV_*`) and its plugin parameters (`PARAM_*`), which the Argo CD UI edits, last.
//!
//! Anything that would print an empty stream is an error, unless the plugin's command says
//! `--allow-empty`: Argo CD would prune every object of the Application.

mod env;

use std::path::Path;

use anyhow::{Context as _, bail};
use kflex_core::settings::Settings;

use super::settings::{SettingsArgs, values_file};
use crate::input::{self, Inputs};
use crate::read::Reader;

/// The file that marks a directory as kflex's for Argo CD's discovery, and holds the
/// Application's settings (a values file; it may be empty).
pub(crate) const SETTINGS_FILE: &str = "kflex.yaml";

/// What the plugin renders.
#[derive(Debug)]
pub(crate) struct Plugin {
    pub settings: Settings,
    pub inputs: Inputs,
    /// Also render the system manifests (`--system`, or the plugin option `SYSTEM`).
    pub system: bool,
}

/// Reads the source directory `dir` (through `reader`) and Argo CD's variables among `vars`.
pub(crate) fn prepare(
    flags: &SettingsArgs,
    dir: &Path,
    vars: &[(String, String)],
    system_flag: bool,
    allow_empty: bool,
    reader: &mut Reader,
) -> anyhow::Result<Plugin> {
    let argo = env::read(vars)?;
    let mut layers = vec![argo.kube_version];
    layers.extend(flags.layers(reader, vars.iter().cloned())?);
    let settings_file = dir.join(SETTINGS_FILE);
    if settings_file.is_file() {
        layers.push(values_file(reader, &settings_file)?);
    }
    layers.push(argo.env);
    layers.push(argo.parameters);
    let settings = Settings::resolve(&layers)?;

    let files = input::discover(dir, SETTINGS_FILE).with_context(|| {
        format!(
            "failed to read the Application's source directory {}",
            dir.display()
        )
    })?;
    let inputs = input::load(&files, false, std::io::empty(), reader)?;
    let system = system_flag || argo.system;
    if inputs.control_planes.is_empty() && !system && !allow_empty {
        let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        bail!(
            "no ControlPlane found in {} or its subdirectories ({} files read); refusing to \
             print an empty stream, which would make Argo CD prune every object of the \
             Application (set the plugin parameter system=true to render only the system \
             manifests; if pruning everything is intended, the plugin's command needs \
             --allow-empty)",
            absolute.display(),
            files.len()
        );
    }
    Ok(Plugin {
        settings,
        inputs,
        system,
    })
}
