//! `kflex bootstrap adopt`: an external control plane. With the kubeconfig in its bootstrap
//! Secret, ensures ServiceAccount kube-system/kubeflex and its cluster-admin binding on the
//! adopted cluster, and writes a kubeconfig with a bound, expiring token of it.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, DeleteParams};
use kube::config::KubeConfigOptions;

use super::{client, labels, now, report};
use crate::bootstrap::duration;
use crate::bootstrap::kubeconfig;
use crate::bootstrap::secrets::{KubeSecrets, SecretStore};
use crate::bootstrap::tokens::{
    ADOPTED_NAMESPACE, ADOPTED_SERVICE_ACCOUNT, adopted_cluster, ensure_adopted_identity,
    request_token, write_token_kubeconfig,
};

#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// The control plane: names the user and context.
    #[arg(long)]
    control_plane: String,
    /// Namespace of the bootstrap Secret.
    #[arg(long)]
    bootstrap_namespace: String,
    /// The bootstrap Secret, holding a kubeconfig of the cluster to adopt.
    #[arg(long)]
    bootstrap_secret: String,
    /// Its key holding the kubeconfig.
    #[arg(long, default_value = "kubeconfig-incluster")]
    bootstrap_key: String,
    /// Lifetime of a new token; renewed in the last third of it.
    #[arg(long, value_parser = duration::parse, default_value = "8760h")]
    token_expiration: Duration,
    /// The control plane's namespace, `<cp>-system`.
    #[arg(long)]
    namespace: String,
    #[arg(long, default_value = "admin-kubeconfig")]
    secret: String,
    #[arg(long, default_value = "kubeconfig-incluster")]
    in_cluster_key: String,
    /// Delete the bootstrap Secret once the kubeconfig is written (it is then needed again
    /// only if the token cannot be renewed in time).
    #[arg(long)]
    delete_bootstrap: bool,
}

pub async fn run(args: AdoptArgs) -> anyhow::Result<()> {
    let hosting = client().await?;
    let bootstrap_store = KubeSecrets::new(hosting.clone(), &args.bootstrap_namespace);
    let where_ = format!(
        "Secret {}/{}",
        args.bootstrap_namespace, args.bootstrap_secret
    );
    let bootstrap = bootstrap_store
        .get(&args.bootstrap_secret)
        .await?
        .with_context(|| format!("{where_} does not exist"))?;
    let bytes = bootstrap
        .data
        .get(&args.bootstrap_key)
        .with_context(|| format!("{where_} has no key {:?}", args.bootstrap_key))?;
    let bootstrap_kubeconfig = kubeconfig::parse(bytes)
        .with_context(|| format!("{where_}, key {:?}", args.bootstrap_key))?;
    let (cluster, namespace) = adopted_cluster(&bootstrap_kubeconfig)
        .with_context(|| format!("{where_}, key {:?}", args.bootstrap_key))?;

    let store = KubeSecrets::new(hosting.clone(), &args.namespace);
    let now = now().unix_timestamp();
    let outcome = write_token_kubeconfig(
        &store,
        &args.secret,
        &args.in_cluster_key,
        &labels(Some(&args.control_plane)),
        &cluster,
        (&args.control_plane, namespace.as_deref()),
        now,
        || async {
            let config = kube::Config::from_custom_kubeconfig(
                bootstrap_kubeconfig.clone(),
                &KubeConfigOptions::default(),
            )
            .await
            .with_context(|| format!("using the kubeconfig in {where_}"))?;
            let adopted = kube::Client::try_from(config)
                .with_context(|| format!("connecting with the kubeconfig in {where_}"))?;
            ensure_adopted_identity(&adopted)
                .await
                .context("preparing the adopted cluster")?;
            let accounts: Api<ServiceAccount> = Api::namespaced(adopted, ADOPTED_NAMESPACE);
            request_token(
                &accounts,
                ADOPTED_NAMESPACE,
                ADOPTED_SERVICE_ACCOUNT,
                args.token_expiration,
                now,
            )
            .await
        },
    )
    .await?;
    report("Secret", &args.namespace, &args.secret, outcome);
    if args.delete_bootstrap {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(hosting, &args.bootstrap_namespace);
        match secrets
            .delete(&args.bootstrap_secret, &DeleteParams::default())
            .await
        {
            Ok(_) => eprintln!("{where_}: deleted"),
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(err) => return Err(anyhow::anyhow!("deleting {where_}: {err}")),
        }
    }
    Ok(())
}
