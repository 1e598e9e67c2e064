//! `kflex version`: this binary's version, and the hosting cluster's when it can be reached.

use std::time::Duration;

use super::session::{KubeconfigArgs, Session};

/// Print kflex's version and the hosting cluster's Kubernetes version
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  kflex version\n  kflex version --client   # no cluster contacted"
)]
pub(crate) struct VersionArgs {
    /// Only this binary's version; do not contact the cluster
    #[arg(long)]
    client: bool,
    #[command(flatten)]
    kubeconfig: KubeconfigArgs,
}

pub(crate) fn run(args: VersionArgs) -> anyhow::Result<()> {
    crate::output::print_line(&format!("kflex version: {}", env!("CARGO_PKG_VERSION")))?;
    if args.client {
        return Ok(());
    }
    // The cluster is optional here: say why it is missing rather than fail.
    let server = Session::load(&args.kubeconfig).and_then(|session| {
        let runtime = super::runtime()?;
        runtime.block_on(async {
            let (context, client) = session.hosting_client().await?;
            let info = tokio::time::timeout(Duration::from_secs(5), client.apiserver_version())
                .await
                .map_err(|_| anyhow::anyhow!("no answer within 5s"))??;
            anyhow::Ok(format!("{} (context {context:?})", info.git_version))
        })
    });
    match server {
        Ok(version) => {
            crate::output::print_line(&format!("hosting cluster Kubernetes version: {version}"))?;
        }
        Err(err) => eprintln!("hosting cluster: not reachable: {err:#}"),
    }
    Ok(())
}
