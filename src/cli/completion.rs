//! `kflex completion`: shell completion scripts, generated from the command definitions.

use clap::CommandFactory as _;

/// Print a shell completion script
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kflex completion bash > /etc/bash_completion.d/kflex
  kflex completion zsh > \"${fpath[1]}/_kflex\"
  kflex completion fish > ~/.config/fish/completions/kflex.fish")]
pub(crate) struct CompletionArgs {
    shell: clap_complete::Shell,
}

pub(crate) fn run(args: CompletionArgs) -> anyhow::Result<()> {
    let mut command = super::Cli::command();
    // Into memory first: clap_complete panics on a failed write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "kflex", &mut script);
    crate::output::print(&String::from_utf8_lossy(&script))
}
