//! `kflex ctx`: switch between the hosting cluster and control planes, and list, rename or
//! delete contexts. Only `ctx NAME` for a control plane not yet in the kubeconfig talks to the
//! cluster; everything else edits the kubeconfig alone.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::{Context as _, bail};
use kflex_core::api::ControlPlane;
use kube::Api;
use serde_json::{Value, json};

use super::kubeconfig::{CONTROL_PLANE, EntryNames, Kubeconfigs, Section};
use super::session::{KubeconfigArgs, Session};

const EXAMPLES: &str = "Examples:
  kflex ctx                 # back to the hosting cluster
  kflex ctx cp1             # to control plane cp1 (its kubeconfig is fetched if needed)
  kflex ctx cp1 -o          # fetch cp1's kubeconfig again, replacing the entries
  kflex ctx list            # every context; * marks the current one
  kflex ctx rename cp1 prod --switch
  kflex ctx delete old-cp";

/// Switch to the hosting cluster (no NAME) or to a control plane's context
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, after_help = EXAMPLES)]
pub(crate) struct CtxArgs {
    #[command(subcommand)]
    command: Option<CtxCommand>,
    /// Control plane (or any context) to switch to
    name: Option<String>,
    /// Fetch the control plane's kubeconfig again, replacing its context, cluster and user
    #[arg(short = 'o', long)]
    overwrite_existing_context: bool,
    /// Record the current context as the hosting cluster's first
    #[arg(short = 'c', long)]
    set_current_for_hosting: bool,
    #[command(flatten)]
    kubeconfig: KubeconfigArgs,
}

#[derive(Debug, clap::Subcommand)]
enum CtxCommand {
    /// Print the current context
    Get {
        #[command(flatten)]
        kubeconfig: KubeconfigArgs,
    },
    /// List contexts: current, name, whether kflex manages it, its control plane
    List {
        /// Output format
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        output: ListFormat,
        #[command(flatten)]
        kubeconfig: KubeconfigArgs,
    },
    /// Rename a context (its `<name>-cluster` and `<name>-admin` entries follow)
    Rename {
        context: String,
        new_context: String,
        /// Make the renamed context current
        #[arg(short = 'S', long)]
        switch: bool,
        #[command(flatten)]
        kubeconfig: KubeconfigArgs,
    },
    /// Delete a context, and its cluster and user unless another context uses them
    Delete {
        context: String,
        /// Do not ask before deleting a context kflex does not manage
        #[arg(short, long)]
        force: bool,
        #[command(flatten)]
        kubeconfig: KubeconfigArgs,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ListFormat {
    Table,
    Json,
}

pub(crate) fn run(args: CtxArgs) -> anyhow::Result<()> {
    match args.command {
        Some(CtxCommand::Get { kubeconfig }) => get(&kubeconfig),
        Some(CtxCommand::List { output, kubeconfig }) => list(&kubeconfig, output),
        Some(CtxCommand::Rename {
            context,
            new_context,
            switch,
            kubeconfig,
        }) => rename(&kubeconfig, &context, &new_context, switch),
        Some(CtxCommand::Delete {
            context,
            force,
            kubeconfig,
        }) => delete(&kubeconfig, &context, force),
        None => switch(args),
    }
}

fn get(kubeconfig: &KubeconfigArgs) -> anyhow::Result<()> {
    let session = Session::load(kubeconfig)?;
    let current = session.kubeconfigs.current_context().with_context(|| {
        format!(
            "the kubeconfig ({}) has no current context",
            session.kubeconfigs.describe_paths()
        )
    })?;
    crate::output::print_line(current)
}

/// One row of `ctx list`.
fn rows(kubeconfigs: &Kubeconfigs) -> Vec<Value> {
    let current = kubeconfigs.current_context();
    let hosting = kubeconfigs.hosting_context();
    kubeconfigs
        .context_names()
        .into_iter()
        .map(|name| {
            let data = kubeconfigs.context_extension(&name).unwrap_or_default();
            let text = |key: &str| data.get(key).and_then(Value::as_str).map(str::to_owned);
            json!({
                "name": name,
                "current": current == Some(name.as_str()),
                "managed": !data.is_empty(),
                "hosting": hosting.as_deref() == Some(name.as_str()),
                "controlPlane": text(CONTROL_PLANE),
            })
        })
        .collect()
}

fn list(kubeconfig: &KubeconfigArgs, format: ListFormat) -> anyhow::Result<()> {
    let session = Session::load(kubeconfig)?;
    let rows = rows(&session.kubeconfigs);
    match format {
        ListFormat::Json => {
            crate::output::print_line(&serde_json::to_string_pretty(&rows)?)?;
        }
        ListFormat::Table => {
            let width = rows
                .iter()
                .filter_map(|row| row["name"].as_str())
                .map(str::len)
                .max()
                .unwrap_or(0)
                .max("CONTEXT".len());
            let mut text = format!("  {:<width$}  {:<8}  CONTROL PLANE\n", "CONTEXT", "MANAGED");
            for row in &rows {
                let marker = if row["current"] == json!(true) {
                    "*"
                } else {
                    " "
                };
                let managed = match (row["managed"].as_bool(), row["hosting"].as_bool()) {
                    (_, Some(true)) => "hosting",
                    (Some(true), _) => "yes",
                    _ => "no",
                };
                text.push_str(&format!(
                    "{marker} {:<width$}  {managed:<8}  {}\n",
                    row["name"].as_str().unwrap_or_default(),
                    row["controlPlane"].as_str().unwrap_or("")
                ));
            }
            crate::output::print(&text)?;
        }
    }
    Ok(())
}

fn rename(kubeconfig: &KubeconfigArgs, old: &str, new: &str, switch: bool) -> anyhow::Result<()> {
    let mut session = Session::load(kubeconfig)?;
    session
        .kubeconfigs
        .update(|kubeconfigs| rename_entries(kubeconfigs, old, new, switch))?;
    eprintln!("context {old:?} renamed to {new:?}");
    Ok(())
}

/// Renames context `old` to `new`, with its cluster and user when they are its own.
fn rename_entries(
    kubeconfigs: &mut Kubeconfigs,
    old: &str,
    new: &str,
    switch: bool,
) -> anyhow::Result<()> {
    let mut context = kubeconfigs
        .entry(Section::Contexts, old)
        .cloned()
        .with_context(|| format!("there is no context {old:?} in the kubeconfig"))?;
    if kubeconfigs.has_context(new) {
        bail!("context {new:?} exists already; delete it first (`kflex ctx delete {new}`)");
    }
    let (old_names, new_names) = (EntryNames::of(old), EntryNames::of(new));
    context["name"] = json!(new);
    // The cluster and user follow only when they are this context's own (kflex's names).
    for (section, key, from, to) in [
        (
            Section::Clusters,
            "cluster",
            &old_names.cluster,
            &new_names.cluster,
        ),
        (Section::Users, "user", &old_names.user, &new_names.user),
    ] {
        if context["context"][key].as_str() != Some(from.as_str()) {
            continue;
        }
        if let Some(mut entry) = kubeconfigs.entry(section, from).cloned() {
            if kubeconfigs.entry(section, to).is_some() {
                bail!("the kubeconfig already has a {key} {to:?}; delete it first");
            }
            entry["name"] = json!(to);
            kubeconfigs.remove(section, from);
            kubeconfigs.upsert(section, entry)?;
            context["context"][key] = json!(to);
        }
    }
    let was_current = kubeconfigs.current_context() == Some(old);
    kubeconfigs.remove(Section::Contexts, old);
    kubeconfigs.upsert(Section::Contexts, context)?;
    if kubeconfigs.hosting_context().as_deref() == Some(old) {
        kubeconfigs.set_hosting_context(new)?;
    }
    if switch || was_current {
        kubeconfigs.set_current_context(new)?;
    }
    Ok(())
}

fn delete(kubeconfig: &KubeconfigArgs, context: &str, force: bool) -> anyhow::Result<()> {
    let mut session = Session::load(kubeconfig)?;
    if !session.kubeconfigs.has_context(context) {
        bail!("there is no context {context:?} in the kubeconfig");
    }
    let managed = session.kubeconfigs.context_extension(context).is_some();
    if !managed && !force && !confirm(context)? {
        bail!("cancelled: context {context:?} was not deleted");
    }
    session.kubeconfigs.update(|kubeconfigs| {
        let hosting = kubeconfigs.hosting_context();
        if hosting.as_deref() == Some(context) {
            bail!(
                "context {context:?} is the hosting cluster's; record another first \
                 (`kflex config set-hosting CONTEXT`)"
            );
        }
        remove_context(kubeconfigs, context, hosting.as_deref())
    })?;
    eprintln!("context {context:?} deleted");
    Ok(())
}

/// Removes `context`, and its cluster and user unless another context still uses them. If it
/// was current, `fallback` becomes current.
pub(crate) fn remove_context(
    kubeconfigs: &mut Kubeconfigs,
    context: &str,
    fallback: Option<&str>,
) -> anyhow::Result<()> {
    let body = kubeconfigs
        .body(Section::Contexts, context)
        .cloned()
        .unwrap_or_default();
    let was_current = kubeconfigs.current_context() == Some(context);
    kubeconfigs.remove(Section::Contexts, context);
    for (section, key) in [(Section::Clusters, "cluster"), (Section::Users, "user")] {
        let Some(name) = body.get(key).and_then(Value::as_str) else {
            continue;
        };
        let used_elsewhere = kubeconfigs.context_names().iter().any(|other| {
            kubeconfigs
                .body(Section::Contexts, other)
                .and_then(|other| other.get(key))
                .and_then(Value::as_str)
                == Some(name)
        });
        if !used_elsewhere {
            kubeconfigs.remove(section, name);
        }
    }
    if was_current {
        match fallback.filter(|fallback| kubeconfigs.has_context(fallback)) {
            Some(fallback) => kubeconfigs.set_current_context(fallback)?,
            None => kubeconfigs.clear_current_context(),
        }
    }
    Ok(())
}

fn confirm(context: &str) -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "context {context:?} is not managed by kflex; delete it with --force (there is no \
             terminal to ask on)"
        );
    }
    eprint!("context {context:?} is not managed by kflex; delete it anyway? (y/N) ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

fn switch(args: CtxArgs) -> anyhow::Result<()> {
    let mut session = Session::load(&args.kubeconfig)?;
    if args.set_current_for_hosting {
        session.kubeconfigs.update(|kubeconfigs| {
            let current = kubeconfigs.current_context().map(str::to_owned).context(
                "the kubeconfig has no current context to record as the hosting cluster's",
            )?;
            kubeconfigs.set_hosting_context(&current)
        })?;
    }
    let Some(name) = args.name else {
        let hosting = session.kubeconfigs.update(|kubeconfigs| {
            let hosting = kubeconfigs.hosting_context().with_context(|| {
                "no hosting cluster is recorded; switch to its context and run `kflex ctx \
                 --set-current-for-hosting` (or `kflex config set-hosting CONTEXT`)"
            })?;
            kubeconfigs.set_current_context(&hosting)?;
            Ok(hosting)
        })?;
        eprintln!("switched to context {hosting:?} (the hosting cluster)");
        return Ok(());
    };
    if args.overwrite_existing_context {
        if name == session.hosting_context()? {
            bail!("context {name:?} is the hosting cluster's; it cannot be fetched again");
        }
    } else if session.kubeconfigs.has_context(&name) {
        session
            .kubeconfigs
            .update(|kubeconfigs| kubeconfigs.set_current_context(&name))?;
        eprintln!("switched to context {name:?}");
        return Ok(());
    }
    let runtime = super::runtime()?;
    let (hosting, entries) = runtime.block_on(fetch(&session, &name))?;
    let overwrite = args.overwrite_existing_context;
    session.kubeconfigs.update(|kubeconfigs| {
        if overwrite {
            // The old context's cluster and user go too, unless another context uses them.
            remove_context(kubeconfigs, &name, None)?;
        }
        entries.merge_into(kubeconfigs, &hosting)
    })?;
    eprintln!("switched to context {name:?} (control plane {name})");
    Ok(())
}

/// The hosting context and control plane `name`'s entries.
async fn fetch(session: &Session, name: &str) -> anyhow::Result<(String, super::tenant::Entries)> {
    let (hosting, client) = session.hosting_client().await?;
    let control_planes: Api<ControlPlane> = Api::all(client.clone());
    let cp = control_planes
        .get_opt(name)
        .await
        .with_context(|| format!("reading ControlPlane {name} (hosting context {hosting:?})"))?
        .with_context(|| {
            format!(
                "there is no context {name:?} in the kubeconfig and no ControlPlane {name} on \
                 the hosting cluster (context {hosting:?}); `kflex list` shows them"
            )
        })?;
    let entries = super::tenant::fetch(&session.kubeconfigs, &hosting, &client, &cp).await?;
    Ok((hosting, entries))
}
