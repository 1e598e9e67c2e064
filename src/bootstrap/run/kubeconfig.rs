//! `kflex bootstrap kubeconfig`: Secrets admin-kubeconfig and cm-kubeconfig of a k8s control
//! plane, with client certificates from the CA in k8s-certs.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::{client, labels, now, report};
use crate::bootstrap::certificates::{authority, keys};
use crate::bootstrap::kubeconfig::Endpoint;
use crate::bootstrap::kubeconfigs::{Names, Wanted, admin, controller_manager, plan};
use crate::bootstrap::secrets::{KubeSecrets, SecretStore, upsert};
use crate::bootstrap::{address, duration};

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// The control plane's namespace, `<cp>-system`.
    #[arg(long)]
    namespace: String,
    /// The control plane: names the context (`<cp>`), cluster and user.
    #[arg(long)]
    control_plane: String,
    /// The Secret holding the CA (from `kflex bootstrap pki`).
    #[arg(long, default_value = "k8s-certs")]
    certs_secret: String,
    /// The administrator's Secret (keys kubeconfig, kubeconfig-incluster).
    #[arg(long, default_value = "admin-kubeconfig")]
    admin_secret: String,
    /// The controller manager's Secret (key kubeconfig).
    #[arg(long, default_value = "cm-kubeconfig")]
    controller_manager_secret: String,
    /// The API server from outside the hosting cluster.
    #[arg(long)]
    server: String,
    /// The API server from inside the hosting cluster.
    #[arg(long)]
    in_cluster_server: String,
    /// Lifetime of a new client certificate; renewed in the last third of it.
    #[arg(long, value_parser = duration::parse, default_value = "8760h")]
    client_validity: Duration,
    /// The API Service when it is a load balancer whose address the off-cluster kubeconfig
    /// names (with the host of --server as the certificate's name), once it has one.
    #[arg(long)]
    load_balancer_service: Option<String>,
    /// How long to wait for that address when the Service has none yet (the kubeconfig names
    /// --server meanwhile).
    #[arg(long, value_parser = duration::parse, default_value = "10m")]
    wait_for_address: Duration,
}

/// How often the load balancer's address is looked for while waiting.
const ADDRESS_POLL: Duration = Duration::from_secs(5);

pub async fn run(args: KubeconfigArgs) -> anyhow::Result<()> {
    let client = client().await?;
    let store = KubeSecrets::new(client.clone(), &args.namespace);
    let certs = store.get(&args.certs_secret).await?.with_context(|| {
        format!(
            "Secret {}/{} does not exist yet (kflex bootstrap pki makes it)",
            args.namespace, args.certs_secret
        )
    })?;
    let ca = authority(&certs.data, keys::CA)
        .with_context(|| format!("Secret {}/{}", args.namespace, args.certs_secret))?;
    let names = Names::for_control_plane(&args.control_plane);
    let labels = labels(Some(&args.control_plane));
    let mut address = match &args.load_balancer_service {
        Some(service) => address::read(&client, &args.namespace, service).await?,
        None => None,
    };
    let admin_kubeconfigs = |address: Option<&str>| -> anyhow::Result<[Wanted; 2]> {
        Ok([
            Wanted {
                key: "kubeconfig".to_owned(),
                endpoint: address::endpoint(&args.server, address)?,
                identity: admin(&args.control_plane),
            },
            Wanted {
                key: "kubeconfig-incluster".to_owned(),
                endpoint: Endpoint::plain(&args.in_cluster_server),
                identity: admin(&args.control_plane),
            },
        ])
    };
    let controller_manager_kubeconfig = [Wanted {
        key: "kubeconfig".to_owned(),
        endpoint: Endpoint::plain(&args.in_cluster_server),
        identity: controller_manager(),
    }];
    let now = now();
    for (secret, wanted) in [
        (
            &args.admin_secret,
            &admin_kubeconfigs(address.as_deref())?[..],
        ),
        (
            &args.controller_manager_secret,
            &controller_manager_kubeconfig[..],
        ),
    ] {
        let outcome = upsert(&store, secret, &labels, |current| {
            plan(current, wanted, &names, &ca, args.client_validity, now)
        })
        .await?;
        report("Secret", &args.namespace, secret, outcome);
    }
    // Everything the control plane itself needs is written; the off-cluster kubeconfig follows
    // the load balancer's address once the cloud has given one.
    let Some(service) = &args.load_balancer_service else {
        return Ok(());
    };
    if address.is_some() {
        return Ok(());
    }
    eprintln!(
        "Service {}/{service} has no load-balancer address yet; waiting up to {}",
        args.namespace,
        seconds(args.wait_for_address)
    );
    let started = tokio::time::Instant::now();
    while address.is_none() && started.elapsed() < args.wait_for_address {
        tokio::time::sleep(ADDRESS_POLL.min(args.wait_for_address)).await;
        address = address::read(&client, &args.namespace, service).await?;
    }
    let Some(found) = address else {
        eprintln!(
            "Service {}/{service} got no load-balancer address within {}: the off-cluster \
             kubeconfig names {}; the daily renewal publishes the address later",
            args.namespace,
            seconds(args.wait_for_address),
            args.server
        );
        return Ok(());
    };
    let wanted = admin_kubeconfigs(Some(&found))?;
    let outcome = upsert(&store, &args.admin_secret, &labels, |current| {
        plan(current, &wanted, &names, &ca, args.client_validity, now)
    })
    .await?;
    report("Secret", &args.namespace, &args.admin_secret, outcome);
    Ok(())
}

fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs())
}
