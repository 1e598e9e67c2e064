//! Command-line parsing and dispatch. Clap structs only parse; each subcommand module resolves
//! its arguments (plus files and environment) into validated values, then runs.

mod adopt;
mod argocd;
mod backup;
mod completion;
mod config;
mod crds;
mod create;
mod ctx;
mod delete;
mod diff;
mod exposure;
mod init;
mod kind;
pub mod kubeconfig;
mod list;
mod live;
mod progress;
mod reach;
mod render;
mod session;
mod settings;
mod tenant;
mod version;
mod wait;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kflex_core::text::escape_unsafe;

/// kflex hosts many lightweight Kubernetes control planes inside one hosting cluster.
#[derive(Debug, Parser)]
#[command(name = "kflex", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Render(Box<render::RenderArgs>),
    Init(Box<init::InitArgs>),
    Create(Box<create::CreateArgs>),
    Adopt(Box<adopt::AdoptArgs>),
    List(list::ListArgs),
    Ctx(Box<ctx::CtxArgs>),
    Diff(diff::DiffArgs),
    Delete(delete::DeleteArgs),
    Backup(backup::BackupArgs),
    Restore(Box<backup::RestoreArgs>),
    Config(config::ConfigArgs),
    Version(version::VersionArgs),
    Completion(completion::CompletionArgs),
    Crds(crds::CrdsArgs),
    /// Programs the rendered Jobs and sidecars run inside the hosting cluster (they create every
    /// secret there; see docs/bootstrap.md).
    Bootstrap(Box<crate::bootstrap::run::BootstrapArgs>),
    Controller(Box<crate::controller::run::ControllerArgs>),
}

/// Whether `args` (without the program name) is a command line kflex accepts; for checking
/// the invocations the renderer writes into Jobs and sidecars.
pub fn accepts(args: &[&str]) -> Result<(), clap::Error> {
    Cli::try_parse_from(std::iter::once("kflex").chain(args.iter().copied())).map(|_| ())
}

/// How a command ended that did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// `diff` found differences (exit 1, like `kubectl diff`).
    Differences,
}

/// A command that failed, and the exit code that says so: 1, except for `diff`, whose 1
/// means "differences" (its errors exit 2).
#[derive(Debug)]
pub struct Failure {
    pub error: anyhow::Error,
    pub code: u8,
}

/// Parses the command line and runs the command.
pub fn run() -> Result<Outcome, Failure> {
    let cli = Cli::parse();
    let fail = |code| move |error| Failure { error, code };
    let success = |result: anyhow::Result<()>| result.map(|()| Outcome::Success).map_err(fail(1));
    match cli.command {
        Command::Render(args) => success(render::run(*args)),
        Command::Init(args) => success(init::run(*args)),
        Command::Create(args) => success(create::run(*args)),
        Command::Adopt(args) => success(adopt::run(*args)),
        Command::List(args) => success(list::run(args)),
        Command::Ctx(args) => success(ctx::run(*args)),
        Command::Diff(args) => match diff::run(args) {
            Ok(true) => Ok(Outcome::Differences),
            Ok(false) => Ok(Outcome::Success),
            Err(error) => Err(fail(2)(error)),
        },
        Command::Delete(args) => success(delete::run(args)),
        Command::Backup(args) => success(backup::run(args)),
        Command::Restore(args) => success(backup::run_restore(*args)),
        Command::Config(args) => success(config::run(args)),
        Command::Version(args) => success(version::run(args)),
        Command::Completion(args) => success(completion::run(args)),
        Command::Crds(args) => success(crds::run(args)),
        Command::Bootstrap(args) => success(crate::bootstrap::run::run(*args)),
        Command::Controller(args) => success(crate::controller::run::run(*args)),
    }
}

/// A runtime for a command's API calls: one thread is plenty for a person's command.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The error and its causes, each once: `error: <top>` then `  caused by: <cause>` lines. Each
/// message is one line with every control character escaped: messages quote names and values
/// from input, which must not move the cursor, clear the screen or add lines of their own.
pub fn describe_error(err: &anyhow::Error) -> String {
    let mut text = format!("error: {}", escape_unsafe(&err.to_string()));
    for cause in err.chain().skip(1) {
        text.push_str("\n  caused by: ");
        // An API call's error is a chain of library messages ("client error (Connect)", "tcp
        // connect error", …): say its cause once instead.
        if let Some(api) = cause.downcast_ref::<kube::Error>() {
            text.push_str(&escape_unsafe(&reach::describe(api)));
            break;
        }
        let cause = cause.to_string();
        // Some libraries start their own message with "error: "; say it once.
        let cause = cause.strip_prefix("error: ").unwrap_or(&cause);
        text.push_str(&escape_unsafe(cause));
    }
    text
}

/// A warning for stderr, on one line, with every control character escaped.
pub(crate) fn warn(warning: &str) {
    eprintln!("warning: {}", escape_unsafe(warning));
}

/// A control plane's name from the command line, refused before anything runs when no control
/// plane can have it (it becomes API paths and kubeconfig entries).
pub(crate) fn control_plane_name(value: &str) -> Result<String, String> {
    match kflex_core::api::control_plane_name_problem(value) {
        None => Ok(value.to_owned()),
        Some(reason) => Err(format!("{} {reason}", escape_unsafe(&format!("{value:?}")))),
    }
}

/// A PostCreateHook's name from the command line (a DNS-1123 subdomain, as the API requires).
pub(crate) fn hook_name(value: &str) -> Result<String, String> {
    match kflex_core::api::names::dns1123_subdomain(value) {
        None => Ok(value.to_owned()),
        Some(reason) => Err(format!("{} {reason}", escape_unsafe(&format!("{value:?}")))),
    }
}

/// The process environment. Unlike `std::env::vars`, a variable that is not UTF-8 does not
/// panic: it arrives with replacement characters, and a setting it names is then refused.
pub(crate) fn environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// Output formats of rendering commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// A multi-document YAML stream.
    Yaml,
    /// A JSON `v1/List`.
    Json,
}
