//! `kflex bootstrap tls`: the shared PostgreSQL's CA and server certificate.

use std::time::Duration;

use clap::Args;

use super::{client, labels, now, report};
use crate::bootstrap::certificates::postgres_tls;
use crate::bootstrap::duration;
use crate::bootstrap::pki::Lifetimes;
use crate::bootstrap::secrets::{KubeSecrets, upsert};

#[derive(Debug, Args)]
pub struct TlsArgs {
    /// Namespace of the Secret.
    #[arg(long)]
    namespace: String,
    /// Name of the Secret (keys ca.crt, ca.key, tls.crt, tls.key).
    #[arg(long)]
    secret: String,
    /// A DNS name of the server (repeat for each); the first is also its common name.
    #[arg(long = "dns-name", required = true)]
    dns_names: Vec<String>,
    /// Lifetime of a new CA.
    #[arg(long, value_parser = duration::parse, default_value = "87600h")]
    ca_validity: Duration,
    /// Lifetime of a new server certificate.
    #[arg(long, value_parser = duration::parse, default_value = "87600h")]
    leaf_validity: Duration,
}

pub async fn run(args: TlsArgs) -> anyhow::Result<()> {
    let store = KubeSecrets::new(client().await?, &args.namespace);
    let lifetimes = Lifetimes {
        authority: args.ca_validity,
        leaf: args.leaf_validity,
    };
    let now = now();
    let outcome = upsert(&store, &args.secret, &labels(None), |current| {
        postgres_tls(current, &args.dns_names, lifetimes, now)
    })
    .await?;
    report("Secret", &args.namespace, &args.secret, outcome);
    Ok(())
}
