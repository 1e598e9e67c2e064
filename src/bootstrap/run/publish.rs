//! `kflex bootstrap publish-kubeconfig`: keeps a control plane's kubeconfig published, from
//! the file k3s writes or the Secret vCluster writes. With `--watch` it runs as a sidecar,
//! checking every `--interval` until it is told to stop.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;

use super::{client, labels, report};
use crate::bootstrap::publish::{Published, Source, publish};
use crate::bootstrap::secrets::{KubeSecrets, Outcome};
use crate::bootstrap::{address, duration};

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Namespace of the Secrets, `<cp>-system`.
    #[arg(long)]
    namespace: String,
    /// The Secret to write.
    #[arg(long)]
    secret: String,
    /// Source: the kubeconfig file the server writes (k3s).
    #[arg(long, conflicts_with_all = ["from_secret", "from_key"])]
    kubeconfig_file: Option<PathBuf>,
    /// Source: a Secret holding the server's kubeconfig (vCluster's vc-vcluster).
    #[arg(long, requires = "from_key")]
    from_secret: Option<String>,
    /// The source Secret's key.
    #[arg(long, requires = "from_secret")]
    from_key: Option<String>,
    /// Key for the kubeconfig used from outside the hosting cluster.
    #[arg(long, requires = "server")]
    key: Option<String>,
    /// The server that kubeconfig names.
    #[arg(long, requires = "key")]
    server: Option<String>,
    /// The API Service when it is a load balancer whose address the off-cluster kubeconfig
    /// names (with the host of --server as the certificate's name), once it has one.
    #[arg(long, requires = "server")]
    load_balancer_service: Option<String>,
    /// Key for the kubeconfig used from inside the hosting cluster.
    #[arg(long)]
    in_cluster_key: String,
    /// The server that kubeconfig names.
    #[arg(long)]
    in_cluster_server: String,
    /// Remove keys with empty values from the Secret.
    #[arg(long)]
    drop_empty_keys: bool,
    /// Keep running, publishing again whenever the source changes.
    #[arg(long)]
    watch: bool,
    /// How often to look at the source.
    #[arg(long, value_parser = duration::parse, default_value = "10s")]
    interval: Duration,
}

pub async fn run(args: PublishArgs) -> anyhow::Result<()> {
    let source = match (&args.kubeconfig_file, &args.from_secret, &args.from_key) {
        (Some(path), None, None) => Source::File(path.clone()),
        (None, Some(name), Some(key)) => Source::Secret {
            name: name.clone(),
            key: key.clone(),
        },
        _ => bail!("give either --kubeconfig-file or --from-secret with --from-key"),
    };
    let client = client().await?;
    let store = KubeSecrets::new(client.clone(), &args.namespace);
    // Label only a Secret kflex owns, not the one vCluster writes and kflex adds a key to.
    let labels = match &source {
        Source::Secret { name, .. } if *name == args.secret => Default::default(),
        _ => labels(None),
    };
    let once = || async {
        let published = published(&args, &client).await?;
        publish(
            &store,
            &args.secret,
            &source,
            &published,
            args.drop_empty_keys,
            &labels,
        )
        .await
    };
    if !args.watch {
        return match once().await? {
            Some(outcome) => {
                report("Secret", &args.namespace, &args.secret, outcome);
                Ok(())
            }
            None => bail!("the source kubeconfig does not exist yet"),
        };
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let mut waiting_reported = false;
    loop {
        match once().await {
            Ok(Some(outcome)) => {
                if outcome != Outcome::Unchanged {
                    report("Secret", &args.namespace, &args.secret, outcome);
                }
            }
            Ok(None) if !waiting_reported => {
                eprintln!("waiting for the source kubeconfig");
                waiting_reported = true;
            }
            Ok(None) => {}
            // A sidecar outlives passing API or file errors; say so and try again.
            Err(err) => eprintln!("error: {err:#}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = terminate.recv() => return Ok(()),
        }
    }
}

/// The keys to publish on this pass: the off-cluster one (at the load balancer's address, if
/// there is one to follow and it has one) and the in-cluster one.
async fn published(args: &PublishArgs, client: &kube::Client) -> anyhow::Result<Vec<Published>> {
    let mut published = Vec::new();
    if let (Some(key), Some(server)) = (&args.key, &args.server) {
        let address = match &args.load_balancer_service {
            Some(service) => address::read(client, &args.namespace, service).await?,
            None => None,
        };
        published.push(Published {
            key: key.clone(),
            endpoint: address::endpoint(server, address.as_deref())?,
        });
    }
    published.push(Published::at(&args.in_cluster_key, &args.in_cluster_server));
    Ok(published)
}
