//! `kflex diff`: what the controller would change on the hosting cluster. The control plane
//! (live, or from a file: a change under review) is rendered with the cluster's configuration
//! and hooks and the controller's ownership metadata, each object is applied with a server-side
//! dry run as the controller's field manager, and the result is compared with the live object;
//! members of its ApplySet the new set no longer holds show as removed. Exit 0: no difference,
//! 1: differences, 2 or more: an error (kubectl diff's convention).

use std::collections::BTreeSet;
use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use kflex_core::api::ControlPlane;
use kflex_core::render::facts;
use kflex_core::settings::SYSTEM_NAMESPACE;
use kube::api::{ApiResource, DynamicObject};
use serde_json::Value;
use similar::TextDiff;

use super::live::AsApplied;
use super::session::{KubeconfigArgs, Session};
use crate::cluster::api_for;
use crate::cluster::apply::{DryRun, dry_run};
use crate::cluster::ownership::{Members, applyset_id};
use crate::cluster::prune::list_members;
use crate::cluster::resources::Resources;
use crate::cluster::trust::{Owner, refusal};

const EXAMPLES: &str = "Examples:
  kflex diff cp1                  # would the controller change anything of cp1 now?
  kflex diff -f cp1.yaml          # what applying this edited ControlPlane would change
  kflex diff cp1 --color always | less -R";

/// Show what the controller would change for a control plane (exit 1 when anything)
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct DiffArgs {
    /// A ControlPlane on the hosting cluster
    #[arg(required_unless_present = "filename", conflicts_with = "filename", value_parser = super::control_plane_name)]
    name: Option<String>,
    /// ControlPlane file(s) (and PostCreateHooks, which replace the cluster's of that name)
    #[arg(short = 'f', long, value_name = "FILE")]
    filename: Vec<PathBuf>,
    /// When to colour the diff
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
    #[command(flatten)]
    kubeconfig: KubeconfigArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

/// Whether anything differs.
pub(crate) fn run(args: DiffArgs) -> anyhow::Result<bool> {
    let session = Session::load(&args.kubeconfig)?;
    let proposed = match &args.filename[..] {
        [] => None,
        files => Some(
            crate::input::load(
                files,
                false,
                std::io::stdin().lock(),
                &mut crate::read::Reader::default(),
            )
            .context("reading the ControlPlane files")?,
        ),
    };
    let colour = match args.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stdout().is_terminal(),
    };
    let runtime = super::runtime()?;
    let text = runtime.block_on(async {
        let (hosting, client) = session.hosting_client().await?;
        let mut hooks = super::live::hosting_hooks(&client).await?;
        let control_planes: Vec<ControlPlane> = match (&args.name, proposed) {
            (Some(name), _) => {
                let api: kube::Api<ControlPlane> = kube::Api::all(client.clone());
                vec![api.get_opt(name).await?.with_context(|| {
                    format!("there is no ControlPlane {name} on the hosting cluster (context {hosting:?})")
                })?]
            }
            (None, Some(inputs)) => {
                for hook in inputs.hooks {
                    hooks.retain(|known| known.metadata.name != hook.value.metadata.name);
                    hooks.push(hook.value);
                }
                let api: kube::Api<ControlPlane> = kube::Api::all(client.clone());
                let mut control_planes = Vec::new();
                for proposed in inputs.control_planes {
                    let mut cp = proposed.value;
                    // The live object's uid ties owner references as the controller would.
                    let name = cp.metadata.name.clone().unwrap_or_default();
                    if let Some(live) = api.get_opt(&name).await? {
                        cp.metadata.uid = live.metadata.uid;
                        cp.metadata.annotations = live.metadata.annotations;
                    }
                    control_planes.push(cp);
                }
                control_planes
            }
            (None, None) => anyhow::bail!("name a ControlPlane or give -f FILE"),
        };
        let settings = super::live::hosting_settings(&client).await?;
        let mut text = String::new();
        for cp in &control_planes {
            let applied = super::live::render_with(&settings, hooks.clone(), cp)?;
            text.push_str(&diff_control_plane(&client, cp, &applied).await?);
        }
        anyhow::Ok(text)
    })?;
    if text.is_empty() {
        return Ok(false);
    }
    crate::output::print(&coloured(&text, colour))?;
    Ok(true)
}

/// The diff, with terminal colours when `colour`.
fn coloured(text: &str, colour: bool) -> String {
    if !colour {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.lines() {
        let code = match line.as_bytes().first() {
            Some(b'+') if !line.starts_with("+++") => "32",
            Some(b'-') if !line.starts_with("---") => "31",
            Some(b'@') => "36",
            _ => "1",
        };
        if line.starts_with(' ') {
            out.push_str(line);
        } else {
            out.push_str(&format!("\x1b[{code}m{line}\x1b[0m"));
        }
        out.push('\n');
    }
    out
}

/// The unified diff of one control plane's objects: changed, added and removed.
async fn diff_control_plane(
    client: &kube::Client,
    cp: &ControlPlane,
    applied: &AsApplied,
) -> anyhow::Result<String> {
    let manifests = &applied.manifests;
    let resources = Resources::new(client.clone());
    let mut text = String::new();
    let mut wanted = BTreeSet::new();
    let mut replaced = BTreeSet::new();
    for manifest in manifests {
        let key = manifest.key();
        let resource = resources
            .resolve(manifest.api_version(), manifest.kind())
            .await?;
        let label = label(&resource, manifest.namespace(), manifest.name());
        wanted.insert(label.clone());
        let api = api_for(client, &resource, manifest.namespace());
        let live = api
            .get_opt(manifest.name())
            .await
            .with_context(|| format!("reading {key}"))?;
        let applied = match dry_run(&api, manifest, live.is_some()).await? {
            DryRun::Applied(applied) | DryRun::Created(applied) => applied,
            DryRun::Replaced(applied, _) => {
                replaced.insert(label.clone());
                applied
            }
        };
        let before = live
            .as_ref()
            .map(|live| comparable(live, None))
            .transpose()?;
        let after = comparable(&applied, live.as_ref())?;
        let shown = if replaced.contains(&label) {
            format!("{label} (deleted and created again)")
        } else {
            label
        };
        text.push_str(&unified(&shown, before.as_deref().unwrap_or(""), &after));
    }
    let annotations = cp.metadata.annotations.clone().unwrap_or_default();
    let control_plane = cp.metadata.name.as_deref().unwrap_or_default();
    let id = applyset_id(control_plane);
    let members = list_members(
        client,
        &resources,
        &id,
        &Members::recorded(&annotations),
        |_, _| None,
    )
    .await?;
    // The controller prunes only what belongs to the control plane, whatever its annotations
    // list: show what it would remove, and say what it would leave.
    let owner = Owner {
        control_plane,
        system_namespace: SYSTEM_NAMESPACE,
        generated_secrets: facts(cp.spec.type_).map_or(&[], |f| f.generated_secrets),
        rendered: Some(&applied.rendered),
    };
    for member in members {
        let (namespace, name) = (member.key.namespace.as_deref(), &member.key.name);
        let label = label(&member.resource, namespace, name);
        if wanted.contains(&label) {
            continue;
        }
        if let Some(refusal) = refusal(&owner, &member.key, &member.found) {
            eprintln!("warning: {refusal}");
            continue;
        }
        let api = api_for(client, &member.resource, namespace);
        if let Some(live) = api.get_opt(name).await? {
            text.push_str(&unified(&label, &comparable(&live, None)?, ""));
        }
    }
    Ok(text)
}

fn label(resource: &ApiResource, namespace: Option<&str>, name: &str) -> String {
    let group = if resource.group.is_empty() {
        String::new()
    } else {
        format!(".{}", resource.group)
    };
    match namespace {
        Some(namespace) => format!("{}{group}/{namespace}/{name}", resource.kind),
        None => format!("{}{group}/{name}", resource.kind),
    }
}

/// An object as YAML without what the API server keeps for itself; Secret values masked
/// (`***`, or `*** (before)` / `*** (after)` where they differ from `other`).
fn comparable(object: &DynamicObject, other: Option<&DynamicObject>) -> anyhow::Result<String> {
    let mut value = serde_json::to_value(object)?;
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "managedFields",
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
        ] {
            metadata.remove(key);
        }
    }
    if value.get("kind").and_then(Value::as_str) == Some("Secret") {
        // `kubectl apply` (client-side) keeps the whole Secret, values included, here.
        if let Some(annotations) = value
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
        for field in ["data", "stringData"] {
            // Each field against the same field of `other`: a value of `stringData` is plain
            // text, one of `data` base64.
            let other_data = other
                .and_then(|other| other.data.get(field))
                .cloned()
                .unwrap_or(Value::Null);
            if let Some(data) = value.get_mut(field).and_then(Value::as_object_mut) {
                for (key, secret) in data.iter_mut() {
                    let same = other.is_none() || other_data.get(key) == Some(secret);
                    *secret = Value::String(if same { "***" } else { "*** (changed)" }.to_owned());
                }
            }
        }
    }
    Ok(kflex_core::manifest::to_yaml_document(&value)?)
}

/// `diff -u` of one object, empty when equal.
fn unified(label: &str, before: &str, after: &str) -> String {
    if before == after {
        return String::new();
    }
    TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live/{label}"), &format!("rendered/{label}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_objects_give_no_diff_and_changes_are_unified() {
        assert_eq!(unified("ConfigMap/a/b", "x: 1\n", "x: 1\n"), "");
        let text = unified("ConfigMap/a/b", "x: 1\ny: 2\n", "x: 1\ny: 3\n");
        assert!(
            text.starts_with("--- live/ConfigMap/a/b\n+++ rendered/ConfigMap/a/b\n"),
            "{text}"
        );
        assert!(text.contains("-y: 2\n+y: 3\n"), "{text}");
    }

    #[test]
    fn secret_values_are_never_printed() {
        let secret = |value: &str| -> DynamicObject {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "namespace": "n", "resourceVersion": "7", "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": format!("{{\"data\":{{\"config\":\"{value}\"}}}}")
                }},
                "data": {"config": value, "same": "c2FtZQ=="}
            }))
            .unwrap()
        };
        let (live, applied) = (secret("b2xk"), secret("bmV3"));
        let before = comparable(&live, None).unwrap();
        let after = comparable(&applied, Some(&live)).unwrap();
        for text in [&before, &after] {
            assert!(!text.contains("b2xk") && !text.contains("bmV3"), "{text}");
            assert!(!text.contains("resourceVersion"), "{text}");
        }
        assert!(
            after.contains("config: '*** (changed)'")
                || after.contains("config: \"*** (changed)\""),
            "{after}"
        );
        assert!(unified("Secret/n/s", &before, &after).contains("*** (changed)"));
    }

    #[test]
    fn string_data_is_compared_with_string_data() {
        // As a store that keeps stringData (kflex-testkit's fake) returns vCluster's config.
        let secret = |config: &str| -> DynamicObject {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "namespace": "n"},
                "stringData": {"config.yaml": config}
            }))
            .unwrap()
        };
        let live = secret("a: 1\n");
        let before = comparable(&live, None).unwrap();
        let same = comparable(&secret("a: 1\n"), Some(&live)).unwrap();
        assert_eq!(unified("Secret/n/s", &before, &same), "");
        let changed = comparable(&secret("a: 2\n"), Some(&live)).unwrap();
        assert!(changed.contains("*** (changed)"), "{changed}");
        assert!(!changed.contains("a: 2"), "{changed}");
    }
}
