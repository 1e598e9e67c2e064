//! `kflex bootstrap kubeconfig`: Secrets admin-kubeconfig and cm-kubeconfig of a k8s control
//! plane, with client certificates from the CA in k8s-certs.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::{client, labels, now, report};
use crate::bootstrap::certificates::{authority, keys};
use crate::bootstrap::duration;
use crate::bootstrap::kubeconfigs::{Names, Wanted, admin, controller_manager, plan};
use crate::bootstrap::secrets::{KubeSecrets, SecretStore, upsert};

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
}

pub async fn run(args: KubeconfigArgs) -> anyhow::Result<()> {
    let store = KubeSecrets::new(client().await?, &args.namespace);
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
    let now = now();
    let admin_kubeconfigs = [
        Wanted {
            key: "kubeconfig".to_owned(),
            server: args.server.clone(),
            identity: admin(&args.control_plane),
        },
        Wanted {
            key: "kubeconfig-incluster".to_owned(),
            server: args.in_cluster_server.clone(),
            identity: admin(&args.control_plane),
        },
    ];
    let controller_manager_kubeconfig = [Wanted {
        key: "kubeconfig".to_owned(),
        server: args.in_cluster_server.clone(),
        identity: controller_manager(),
    }];
    for (secret, wanted) in [
        (&args.admin_secret, &admin_kubeconfigs[..]),
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
    Ok(())
}
