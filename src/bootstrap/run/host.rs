//! `kflex bootstrap host-kubeconfig`: the kubeconfig of a host control plane, from a bound,
//! expiring token of its ServiceAccount.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::Api;

use super::{client, labels, now, read_file, report};
use crate::bootstrap::duration;
use crate::bootstrap::secrets::KubeSecrets;
use crate::bootstrap::tokens::{hosting_cluster, request_token, write_token_kubeconfig};

/// Where every pod finds the CA of the cluster it runs in.
const IN_CLUSTER_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

#[derive(Debug, Args)]
pub struct HostKubeconfigArgs {
    /// The control plane's namespace, `<cp>-system`.
    #[arg(long)]
    namespace: String,
    /// The control plane: names the cluster, user and context.
    #[arg(long)]
    control_plane: String,
    /// The ServiceAccount the token is for (bound to cluster-admin by the rendered objects).
    #[arg(long)]
    service_account: String,
    /// Lifetime of a new token; renewed in the last third of it.
    #[arg(long, value_parser = duration::parse, default_value = "8760h")]
    token_expiration: Duration,
    #[arg(long, default_value = "admin-kubeconfig")]
    secret: String,
    #[arg(long, default_value = "kubeconfig-incluster")]
    in_cluster_key: String,
    #[arg(long, default_value = "https://kubernetes.default.svc")]
    in_cluster_server: String,
    /// The hosting cluster's CA.
    #[arg(long, default_value = IN_CLUSTER_CA)]
    ca_file: PathBuf,
}

pub async fn run(args: HostKubeconfigArgs) -> anyhow::Result<()> {
    let client = client().await?;
    let ca = String::from_utf8(read_file(&args.ca_file)?)
        .with_context(|| format!("{} is not UTF-8", args.ca_file.display()))?;
    let cluster = hosting_cluster(&args.control_plane, &args.in_cluster_server, &ca);
    let store = KubeSecrets::new(client.clone(), &args.namespace);
    let accounts: Api<ServiceAccount> = Api::namespaced(client, &args.namespace);
    let now = now().unix_timestamp();
    let outcome = write_token_kubeconfig(
        &store,
        &args.secret,
        &args.in_cluster_key,
        &labels(Some(&args.control_plane)),
        &cluster,
        (&args.control_plane, None),
        now,
        || {
            request_token(
                &accounts,
                &args.namespace,
                &args.service_account,
                args.token_expiration,
                now,
            )
        },
    )
    .await?;
    report("Secret", &args.namespace, &args.secret, outcome);
    Ok(())
}
