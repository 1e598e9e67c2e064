//! Command-line parsing and dispatch. Clap structs only parse; each subcommand module resolves
//! its arguments (plus files and environment) into validated values, then runs.

mod argocd;
mod crds;
mod render;
mod settings;

use clap::{Parser, Subcommand};

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

/// Parses the command line and runs the command.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Render(args) => render::run(*args),
        Command::Crds(args) => crds::run(args),
        Command::Bootstrap(args) => crate::bootstrap::run::run(*args),
        Command::Controller(args) => crate::controller::run::run(*args),
    }
}

/// The error and its causes, each once: `error: <top>` then `  caused by: <cause>` lines.
pub fn describe_error(err: &anyhow::Error) -> String {
    let mut text = format!("error: {err}");
    for cause in err.chain().skip(1) {
        text.push_str("\n  caused by: ");
        let cause = cause.to_string();
        // Some libraries start their own message with "error: "; say it once.
        let cause = cause.strip_prefix("error: ").unwrap_or(&cause);
        text.push_str(&cause.replace('\n', "\n    "));
    }
    text
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
