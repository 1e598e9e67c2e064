//! `kflex render`: control planes (and, with `--system`, the one-time system manifests) as
//! canonical YAML or JSON, on stdout or one file per object. Everything is rendered before
//! anything is written: on any error stdout stays empty and the exit status is non-zero.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use kflex_core::api::{ControlPlane, ControlPlaneSpec, ControlPlaneType};
use kflex_core::render::{HookCatalog, RenderError, Renderer, SetError, TemplateSet};

use kflex_core::manifest::{EmitError, ObjectKey};

use super::settings::SettingsArgs;
use super::{Format, argocd};
use crate::output::{self, Target};
use crate::read::{self, CapFlags, ReadLimits, Reader};
use crate::{batch, input};

const EXAMPLES: &str = "\
Examples:
  # A k8s control plane named cp1, from embedded defaults
  kflex render cp1

  # Every ControlPlane in a directory, with the PostCreateHooks it references
  kflex render -f controlplanes/ -f hooks/

  # What the hosting cluster needs once, then a control plane, applied in one go
  kflex render --system cp1 | kubectl apply --server-side -f -

  # One file per object, for review in pull requests
  kflex render -f cp.yaml --output-dir rendered/

  # As Argo CD's config-management plugin runs it, in an Application's source directory
  ARGOCD_ENV_DOMAIN=example.com KUBE_VERSION=v1.33.4 kflex render --argocd

  # Settings from a file, the environment and flags
  KFLEX_DOMAIN=example.com kflex render cp1 --values settings.yaml --set images.kine.tag=v0.14.14 --openshift";

/// Render control planes to canonical manifests (no cluster needed)
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct RenderArgs {
    /// Control planes to render without a file, of type --type
    #[arg(value_name = "NAME")]
    names: Vec<String>,
    /// ControlPlane and PostCreateHook files or directories, YAML or JSON ("-" for stdin)
    #[arg(short = 'f', long = "filename", value_name = "FILE_OR_DIR")]
    files: Vec<PathBuf>,
    /// Also read subdirectories of directories given with -f
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Type of the control planes named on the command line [default: k8s]
    #[arg(short = 't', long = "type", value_enum, value_name = "TYPE")]
    type_: Option<TypeArg>,
    /// Also render what the hosting cluster needs once: namespace, CRDs, config, PostgreSQL,
    /// controller
    #[arg(long)]
    system: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
    output: Format,
    /// Write one file per object to DIR/<control plane>/ (DIR/system/ for --system), replacing
    /// those directories and removing the ones earlier runs wrote for sets not rendered now,
    /// instead of printing; all or nothing, and only directories kflex wrote are replaced or
    /// removed
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Argo CD plugin mode: render the ControlPlanes and PostCreateHooks under the current
    /// directory with settings from kflex.yaml there, ARGOCD_ENV_<SETTING>, PARAM_<SETTING> and
    /// KUBE_VERSION (see examples/argocd/); with --output-dir, for reviewing what Argo CD
    /// would apply
    #[arg(long, conflicts_with_all = ["names", "files", "recursive", "type_"])]
    argocd: bool,
    /// Succeed when the inputs render no object at all: print nothing (with --output-dir,
    /// remove every set earlier runs wrote). Without it that is an error, because Argo CD and
    /// Flux delete everything they applied when handed nothing
    #[arg(long)]
    allow_empty: bool,
    /// Directory whose templates replace the embedded ones file by file (layout of templates/)
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// Most bytes read of one input (a -f file, stdin, a --values, --templates or Argo CD source
    /// file), e.g. 128Mi; what one YAML input may hold (nodes, documents) grows with it
    #[arg(long, value_name = "SIZE", value_parser = read::parse_size, default_value = "64Mi")]
    max_input_bytes: u64,
    /// Most bytes read of all inputs together
    #[arg(long, value_name = "SIZE", value_parser = read::parse_size, default_value = "256Mi")]
    max_total_input_bytes: u64,
    #[command(flatten)]
    settings: SettingsArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TypeArg {
    K8s,
    K3s,
    Vcluster,
    Host,
    External,
    Ocm,
}

impl From<TypeArg> for ControlPlaneType {
    fn from(value: TypeArg) -> Self {
        match value {
            TypeArg::K8s => Self::K8s,
            TypeArg::K3s => Self::K3s,
            TypeArg::Vcluster => Self::Vcluster,
            TypeArg::Host => Self::Host,
            TypeArg::External => Self::External,
            TypeArg::Ocm => Self::Ocm,
        }
    }
}

/// The name of the system manifests' set (its directory under `--output-dir`).
const SYSTEM_SET: &str = "system";

/// A control plane failed to render; says which input it came from.
#[derive(Debug, thiserror::Error)]
#[error("failed to render ControlPlane {name:?} ({origin})")]
struct ControlPlaneFailed {
    name: String,
    origin: String,
    #[source]
    source: Box<SetError>,
}

pub(crate) fn run(args: RenderArgs) -> anyhow::Result<()> {
    let environment = super::environment();
    let mut reader = Reader::new(ReadLimits {
        per_input: args.max_input_bytes,
        total: args.max_total_input_bytes,
        flags: Some(CapFlags {
            per_input: "--max-input-bytes",
            total: "--max-total-input-bytes",
        }),
    });
    let (settings, inputs, system) = if args.argocd {
        let plugin = argocd::prepare(
            &args.settings,
            Path::new("."),
            &environment,
            args.system,
            args.allow_empty,
            &mut reader,
        )?;
        (plugin.settings, plugin.inputs, plugin.system)
    } else {
        if args.names.is_empty() && args.files.is_empty() && !args.system {
            bail!("nothing to render: give control-plane NAMEs, -f FILE_OR_DIR, or --system");
        }
        if args.type_.is_some() && args.names.is_empty() {
            bail!(
                "--type applies to control planes named on the command line; a file's ControlPlanes carry spec.type"
            );
        }
        let settings = args.settings.resolve(&mut reader, environment)?;
        let inputs = input::load(
            &args.files,
            args.recursive,
            std::io::stdin().lock(),
            &mut reader,
        )?;
        (settings, inputs, args.system)
    };
    let templates = load_templates(args.templates.as_deref(), &mut reader)?;

    let mut origins: BTreeMap<String, String> = BTreeMap::new();
    let mut control_planes = Vec::new();
    for located in inputs.control_planes {
        let name = located.value.metadata.name.clone().unwrap_or_default();
        origins
            .entry(name)
            .or_insert_with(|| located.location.to_string());
        control_planes.push(located.value);
    }
    let type_ = args.type_.unwrap_or(TypeArg::K8s).into();
    for name in &args.names {
        origins
            .entry(name.clone())
            .or_insert_with(|| "command line".to_owned());
        control_planes.push(ControlPlane::new(name, spec_of_type(type_)));
    }
    let hooks = inputs.hooks.into_iter().map(|located| located.value);
    let catalog = HookCatalog::new(hooks)?;

    let renderer = Renderer::new(settings, &templates)?;
    let target = Target {
        json: args.output == Format::Json,
        dir: args.output_dir.clone(),
    };
    let mut sets = Vec::new();
    let mut warnings = Vec::new();
    let mut system_keys = Vec::new();
    let mut objects = 0;
    if system {
        let system = renderer.render_system()?;
        system_keys = system.shareable_keys();
        warnings.extend(system.warnings);
        objects += system.manifests.len();
        sets.push((
            SYSTEM_SET.to_owned(),
            output::finish(system.manifests, &target)?,
        ));
    }
    let rendered: Vec<(&str, &[ObjectKey])> = if system {
        vec![("the system manifests", system_keys.as_slice())]
    } else {
        Vec::new()
    };
    let finished = batch::render_batch(
        &renderer,
        &control_planes,
        &catalog,
        batch::default_threads(),
        &rendered,
        |manifests| {
            let count = manifests.len();
            let formatted = output::finish(manifests, &target).map_err(BatchError::Emit)?;
            Ok((count, formatted))
        },
    )
    .map_err(|err| match err {
        BatchError::Render(err) => locate(err, &origins),
        BatchError::Emit(err) => err.into(),
    })?;
    for set in finished {
        warnings.extend(set.warnings);
        let (count, formatted) = set.output;
        objects += count;
        sets.push((set.control_plane, formatted));
    }
    for warning in &warnings {
        super::warn(warning);
    }
    if objects == 0 {
        if !args.allow_empty {
            bail!(nothing_rendered(&args, control_planes.len()));
        }
        if target.dir.is_none() {
            // Not even an empty JSON list: nothing is what was asked for.
            return Ok(());
        }
    }
    output::write(&target, sets)
}

/// Why an empty result is refused, and how to allow it.
fn nothing_rendered(args: &RenderArgs, control_planes: usize) -> String {
    let what = if control_planes == 0 {
        "the inputs hold no ControlPlane (and --system was not given)".to_owned()
    } else {
        format!("the {control_planes} control planes rendered no object")
    };
    let consequence = match &args.output_dir {
        Some(dir) => format!(
            "writing it would remove every set directory earlier runs wrote to {}, and Flux \
             would then delete every control plane",
            dir.display()
        ),
        None => "an empty stream makes Argo CD and Flux delete every object they applied \
                 before"
            .to_owned(),
    };
    format!(
        "nothing rendered: {what}; refusing, because {consequence}. If that is intended, pass \
         --allow-empty"
    )
}

/// What can go wrong on a rendering worker.
#[derive(Debug)]
enum BatchError {
    Render(RenderError),
    Emit(EmitError),
}

impl From<RenderError> for BatchError {
    fn from(err: RenderError) -> Self {
        Self::Render(err)
    }
}

fn spec_of_type(type_: ControlPlaneType) -> ControlPlaneSpec {
    ControlPlaneSpec {
        type_,
        backend: None,
        bootstrap_secret_ref: None,
        token_expiration_seconds: None,
        post_create_hook: None,
        post_create_hook_vars: None,
        post_create_hooks: None,
        global_vars: None,
        wait_for_post_create_hooks: None,
        kubernetes_version: None,
        replicas: None,
        backup: None,
        restore_from: None,
    }
}

/// Adds the input location to a control plane's render error.
fn locate(err: RenderError, origins: &BTreeMap<String, String>) -> anyhow::Error {
    match err {
        RenderError::ControlPlane { name, source } => {
            let origin = origins
                .get(&name)
                .cloned()
                .unwrap_or_else(|| "input".to_owned());
            ControlPlaneFailed {
                name,
                origin,
                source,
            }
            .into()
        }
        other => other.into(),
    }
}

/// The embedded templates, overridden by the `.yaml` files under `dir` (read by `reader`).
fn load_templates(dir: Option<&Path>, reader: &mut Reader) -> anyhow::Result<TemplateSet> {
    let Some(dir) = dir else {
        return Ok(TemplateSet::embedded());
    };
    let mut files = Vec::new();
    collect_templates(dir, dir, reader, &mut files)
        .with_context(|| format!("failed to read templates directory {}", dir.display()))?;
    if files.is_empty() {
        bail!("templates directory {} has no .yaml files", dir.display());
    }
    TemplateSet::embedded()
        .with_overrides(files)
        .with_context(|| format!("templates directory {}", dir.display()))
}

fn collect_templates(
    root: &Path,
    dir: &Path,
    reader: &mut Reader,
    files: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        // Only real directories are entered, so a symlink cycle cannot loop.
        if std::fs::symlink_metadata(&path)?.is_dir() {
            collect_templates(root, &path, reader, files)?;
        } else if path.is_file() && path.extension().is_some_and(|e| e == "yaml") {
            crate::read::check_inside(root, &path)?;
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            files.push((name, reader.read_path(&path)?));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Location;

    #[test]
    fn locations_are_added_to_control_plane_errors() {
        let err = RenderError::ControlPlane {
            name: "cp".into(),
            source: Box::new(SetError::Ocm),
        };
        let origins = BTreeMap::from([("cp".to_owned(), "a.yaml, document 2".to_owned())]);
        let text = super::super::describe_error(&locate(err, &origins));
        assert_eq!(
            text,
            "error: failed to render ControlPlane \"cp\" (a.yaml, document 2)\n  caused by: spec.type: type ocm is deprecated and kflex does not render it; for the same result use type vcluster with a PostCreateHook that installs an OCM hub inside it (example: examples/hooks/ocm.yaml in the kflex repository)"
        );
    }

    #[test]
    fn location_type_is_displayed_for_inputs() {
        let location = Location {
            file: "x.yaml".into(),
            document: 1,
            item: None,
        };
        assert_eq!(location.to_string(), "x.yaml, document 1");
    }
}
