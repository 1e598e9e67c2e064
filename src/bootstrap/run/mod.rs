//! The `kflex bootstrap` subcommands: arguments, then the work against the Kubernetes API (and
//! PostgreSQL), on a single-threaded runtime.

mod adopt;
pub mod backup;
mod database;
mod host;
mod kubeconfig;
mod password;
mod pki;
mod publish;
mod tls;

use std::collections::BTreeMap;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use time::OffsetDateTime;

use super::secrets::Outcome;

/// Programs the rendered Jobs and sidecars run inside the hosting cluster.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A random password in a Secret (the shared PostgreSQL's admin password).
    Password(password::PasswordArgs),
    /// The shared PostgreSQL's CA and server certificate.
    Tls(tls::TlsArgs),
    /// A k8s control plane's certificates and service-account keys (Secret k8s-certs).
    Pki(pki::PkiArgs),
    /// A k8s control plane's kubeconfigs (admin-kubeconfig, cm-kubeconfig).
    Kubeconfig(kubeconfig::KubeconfigArgs),
    /// A k8s control plane's role and database in the shared PostgreSQL, and kine's Secret.
    Database(database::DatabaseArgs),
    /// A host control plane's kubeconfig, from a bound, expiring token.
    HostKubeconfig(host::HostKubeconfigArgs),
    /// An external control plane: a token on the adopted cluster, in a kubeconfig.
    Adopt(adopt::AdoptArgs),
    /// A k3s or vcluster control plane's kubeconfig, published for use from outside and inside.
    PublishKubeconfig(publish::PublishArgs),
    /// A k8s control plane's database backups: take one, list them, restore one.
    Backup(backup::BackupArgs),
}

/// Runs the subcommand.
pub fn run(args: BootstrapArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match args.command {
            Command::Password(args) => password::run(args).await,
            Command::Tls(args) => tls::run(args).await,
            Command::Pki(args) => pki::run(args).await,
            Command::Kubeconfig(args) => kubeconfig::run(args).await,
            Command::Database(args) => database::run(args).await,
            Command::HostKubeconfig(args) => host::run(args).await,
            Command::Adopt(args) => adopt::run(args).await,
            Command::PublishKubeconfig(args) => publish::run(args).await,
            Command::Backup(args) => backup::run(args).await,
        }
    })
}

/// A client for the cluster this runs in (or `$KUBECONFIG` outside one).
async fn client() -> anyhow::Result<kube::Client> {
    crate::bootstrap::kubeconfig::infer_client()
        .await
        .context("connecting to the Kubernetes API (in-cluster configuration or $KUBECONFIG)")
}

/// The labels of Secrets the bootstrap programs write: made by kflex at runtime (not rendered,
/// so not `managed-by: kflex`), and the control plane's when there is one.
fn labels(control_plane: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([(
        "app.kubernetes.io/managed-by".to_owned(),
        "kflex-bootstrap".to_owned(),
    )]);
    if let Some(name) = control_plane {
        labels.insert(
            kflex_core::render::metadata::CONTROL_PLANE_LABEL.to_owned(),
            name.to_owned(),
        );
    }
    labels
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// One line saying what happened to an object; never its content.
fn report(kind: &str, namespace: &str, name: &str, outcome: Outcome) {
    eprintln!("{kind} {namespace}/{name}: {}", outcome.describe());
}

/// Reads a file the pod mounts, naming it if that fails.
fn read_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}
