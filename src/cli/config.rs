//! `kflex config`: kflex's own settings in the user's kubeconfig.

use anyhow::Context as _;

use super::session::{KubeconfigArgs, Session};

/// kflex's settings in the kubeconfig
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  kflex config set-hosting kind-kubeflex\n  kflex config set-hosting   # the current context"
)]
pub(crate) struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Record which context reaches the hosting cluster [default: the current context]
    #[command(after_help = "Examples:\n  kflex config set-hosting kind-kubeflex")]
    SetHosting {
        context: Option<String>,
        #[command(flatten)]
        kubeconfig: KubeconfigArgs,
    },
}

pub(crate) fn run(args: ConfigArgs) -> anyhow::Result<()> {
    match args.command {
        ConfigCommand::SetHosting {
            context,
            kubeconfig,
        } => {
            let mut session = Session::load(&kubeconfig)?;
            let context = match context {
                Some(context) => context,
                None => session
                    .kubeconfigs
                    .current_context()
                    .map(str::to_owned)
                    .context("the kubeconfig has no current context; name one")?,
            };
            session
                .kubeconfigs
                .update(|kubeconfigs| kubeconfigs.set_hosting_context(&context))?;
            eprintln!("hosting cluster: context {context:?}");
            Ok(())
        }
    }
}
