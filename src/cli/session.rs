//! What every command that works with the user's kubeconfig shares: the `--kubeconfig` flag,
//! the files it resolves to, the recorded hosting cluster, and API clients for contexts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::kubeconfig::{Kubeconfigs, Section, Sources};
use super::reach;

/// The kubeconfig option of people-facing commands.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct KubeconfigArgs {
    /// Kubeconfig file to use [default: the files $KUBECONFIG lists, else ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// The user's kubeconfig, loaded.
#[derive(Debug)]
pub struct Session {
    pub kubeconfigs: Kubeconfigs,
}

impl Session {
    pub fn load(args: &KubeconfigArgs) -> anyhow::Result<Self> {
        let sources = Sources::from_env(args.kubeconfig.as_deref())?;
        let kubeconfigs = Kubeconfigs::load(&sources)?;
        Ok(Self { kubeconfigs })
    }

    /// The hosting cluster's context: the recorded one (`kflex init`, `kflex config
    /// set-hosting`), else the current context.
    pub fn hosting_context(&self) -> anyhow::Result<String> {
        if let Some(recorded) = self.kubeconfigs.hosting_context() {
            if !self.kubeconfigs.has_context(&recorded) {
                bail!(
                    "the recorded hosting context {recorded:?} is not in the kubeconfig ({}); \
                     record another with `kflex config set-hosting CONTEXT`",
                    self.kubeconfigs.describe_paths()
                );
            }
            return Ok(recorded);
        }
        if !self.kubeconfigs.any_exists() {
            bail!(
                "the kubeconfig {} does not exist; create a cluster (`kflex init --create-kind`), \
                 or name another file with --kubeconfig or $KUBECONFIG",
                self.kubeconfigs.describe_paths()
            );
        }
        self.kubeconfigs
            .current_context()
            .map(str::to_owned)
            .with_context(|| {
                format!(
                    "no hosting cluster: the kubeconfig ({}) records none and has no current \
                     context; run `kflex init`, or `kflex config set-hosting CONTEXT`",
                    self.kubeconfigs.describe_paths()
                )
            })
    }

    /// An API client for `context`, configured by kube-rs from the files on disk exactly as
    /// kubectl would read them (relative certificate paths, exec plugins, proxies).
    pub async fn client(&self, context: &str) -> anyhow::Result<kube::Client> {
        let mut merged: Option<Kubeconfig> = None;
        for path in self.kubeconfigs.paths().filter(|path| path.exists()) {
            let file = crate::bootstrap::kubeconfig::read_file(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            merged = Some(match merged {
                None => file,
                Some(earlier) => earlier
                    .merge(file)
                    .with_context(|| format!("merging kubeconfig {}", path.display()))?,
            });
        }
        let merged = merged.with_context(|| {
            format!(
                "no kubeconfig file exists ({})",
                self.kubeconfigs.describe_paths()
            )
        })?;
        let options = KubeConfigOptions {
            context: Some(context.to_owned()),
            ..KubeConfigOptions::default()
        };
        let mut config = kube::Config::from_custom_kubeconfig(merged, &options)
            .await
            .with_context(|| format!("using kubeconfig context {context:?}"))?;
        // A person is waiting: an unreachable cluster should fail in seconds, not minutes.
        config.connect_timeout = Some(reach::FIRST_ANSWER);
        config.read_timeout = Some(Duration::from_secs(60));
        let server = reach::Server {
            url: config
                .cluster_url
                .to_string()
                .trim_end_matches('/')
                .to_owned(),
            context: context.to_owned(),
            ca: self.trusted_ca(context),
        };
        let client = kube::Client::try_from(config)
            .with_context(|| format!("connecting with kubeconfig context {context:?}"))?;
        // One request that every API server answers, so that a cluster that cannot be used is
        // reported once, in one line naming it, before any command's own work.
        reach::check(&client, &server).await?;
        Ok(client)
    }

    /// Which CA the kubeconfig trusts for `context`'s cluster, for messages.
    fn trusted_ca(&self, context: &str) -> String {
        let cluster = self
            .kubeconfigs
            .body(Section::Contexts, context)
            .and_then(|body| body.get("cluster"))
            .and_then(serde_json::Value::as_str);
        let Some((file, entry)) =
            cluster.and_then(|name| self.kubeconfigs.entry_with_file(Section::Clusters, name))
        else {
            return "the CAs this machine trusts".to_owned();
        };
        let name = cluster.unwrap_or_default();
        let body = entry.get("cluster");
        let field = |key: &str| body.and_then(|body| body.get(key));
        if let Some(path) = field("certificate-authority").and_then(serde_json::Value::as_str) {
            format!(
                "the CA in {path} (certificate-authority of cluster {name:?} in {})",
                file.display()
            )
        } else if field("certificate-authority-data").is_some() {
            format!(
                "the CA in certificate-authority-data of cluster {name:?} in {}",
                file.display()
            )
        } else {
            format!(
                "the CAs this machine trusts (cluster {name:?} in {} names no \
                 certificate-authority)",
                file.display()
            )
        }
    }

    /// A client for the hosting cluster, and its context's name.
    pub async fn hosting_client(&self) -> anyhow::Result<(String, kube::Client)> {
        let context = self.hosting_context()?;
        let client = self.client(&context).await?;
        Ok((context, client))
    }
}
