//! `kflex bootstrap pki`: Secret k8s-certs of a k8s control plane.

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;

use super::{client, labels, now, report};
use crate::bootstrap::certificates::{ApiServerNames, k8s_certs};
use crate::bootstrap::duration;
use crate::bootstrap::pki::Lifetimes;
use crate::bootstrap::secrets::{KubeSecrets, upsert};

#[derive(Debug, Args)]
pub struct PkiArgs {
    /// The control plane's namespace, `<cp>-system`.
    #[arg(long)]
    namespace: String,
    /// The control plane, for the Secret's labels.
    #[arg(long)]
    control_plane: Option<String>,
    /// Name of the Secret.
    #[arg(long, default_value = "k8s-certs")]
    secret: String,
    /// A DNS name of the API server (repeat for each).
    #[arg(long = "dns-name", required = true)]
    dns_names: Vec<String>,
    /// An IP address of the API server (repeat for each).
    #[arg(long = "ip-address")]
    ip_addresses: Vec<IpAddr>,
    /// Lifetime of a new CA.
    #[arg(long, value_parser = duration::parse, default_value = "87600h")]
    ca_validity: Duration,
    /// Lifetime of a new leaf certificate; leaves are renewed in the last third of it.
    #[arg(long, value_parser = duration::parse, default_value = "8760h")]
    leaf_validity: Duration,
}

pub async fn run(args: PkiArgs) -> anyhow::Result<()> {
    let store = KubeSecrets::new(client().await?, &args.namespace);
    let names = ApiServerNames {
        dns_names: args.dns_names,
        ip_addresses: args.ip_addresses,
    };
    let lifetimes = Lifetimes {
        authority: args.ca_validity,
        leaf: args.leaf_validity,
    };
    let now = now();
    let outcome = upsert(
        &store,
        &args.secret,
        &labels(args.control_plane.as_deref()),
        |current| k8s_certs(current, &names, lifetimes, now),
    )
    .await?;
    report("Secret", &args.namespace, &args.secret, outcome);
    Ok(())
}
