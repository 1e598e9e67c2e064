//! Kubeconfigs that authenticate with bound, expiring ServiceAccount tokens (TokenRequest):
//! `kflex bootstrap host-kubeconfig` (the hosting cluster itself) and `kflex bootstrap adopt`
//! (an external cluster, reached with the kubeconfig in its bootstrap Secret). A token is
//! renewed when less than a third of its lifetime is left; the CronJobs that run these programs
//! come often enough for that to happen in time. No long-lived token Secret is ever created.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{Kubeconfig, NamedCluster};

use super::kubeconfig::{self, Credentials};
use super::pki::due_for_renewal;
use super::secrets::{Outcome, SecretData, SecretStore, upsert};

/// A granted lifetime may be this much shorter than the one asked for (the API server rounds).
const LIFETIME_SLACK: Duration = Duration::from_secs(60);

/// A token and when it expires (Unix seconds).
#[derive(Clone)]
pub struct Token {
    pub token: String,
    pub expires: i64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Asks `accounts` for a token of ServiceAccount `name` living `lifetime`, and refuses a token
/// that lives shorter: the renewal schedule was made for the lifetime asked for.
pub async fn request_token(
    accounts: &Api<ServiceAccount>,
    namespace: &str,
    name: &str,
    lifetime: Duration,
    now: i64,
) -> anyhow::Result<Token> {
    let seconds = i64::try_from(lifetime.as_secs()).context("token lifetime")?;
    let request = TokenRequest {
        metadata: ObjectMeta::default(),
        spec: TokenRequestSpec {
            expiration_seconds: Some(seconds),
            ..TokenRequestSpec::default()
        },
        status: None,
    };
    let granted = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .map_err(|err| match err {
            kube::Error::Api(status) => anyhow::anyhow!(
                "requesting a token for ServiceAccount {namespace}/{name} failed: {} ({})",
                status.message,
                status.code
            ),
            other => anyhow::anyhow!(
                "requesting a token for ServiceAccount {namespace}/{name} failed: {other}"
            ),
        })?;
    let status = granted
        .status
        .context("the TokenRequest answer has no status")?;
    let expires = status.expiration_timestamp.0.as_second();
    let granted_seconds = expires - now;
    let slack = i64::try_from(LIFETIME_SLACK.as_secs()).unwrap_or(60);
    if granted_seconds < seconds - slack {
        bail!(
            "the API server granted a token for ServiceAccount {namespace}/{name} that lives \
             {granted_seconds}s instead of {seconds}s (its --service-account-max-token-expiration \
             is lower); set spec.tokenExpirationSeconds to at most {granted_seconds} so it is \
             renewed in time"
        );
    }
    Ok(Token {
        token: status.token,
        expires,
    })
}

/// Whether the kubeconfig under `key` of `data` uses `cluster` (same server and trust) and a
/// token that is not yet due for renewal at `now`.
pub fn still_good(data: Option<&SecretData>, key: &str, cluster: &NamedCluster, now: i64) -> bool {
    let Some(bytes) = data.and_then(|d| d.get(key)) else {
        return false;
    };
    let Ok(parsed) = kubeconfig::parse(bytes) else {
        return false;
    };
    let Ok(current) = kubeconfig::current(&parsed) else {
        return false;
    };
    let same_cluster = current.cluster.name == cluster.name
        && serde_json::to_value(&current.cluster.cluster).ok()
            == serde_json::to_value(&cluster.cluster).ok();
    let fresh = current
        .token()
        .and_then(|token| kubeconfig::token_times(&token))
        .is_some_and(|(issued, expires)| !due_for_renewal(issued, expires, now));
    same_cluster && fresh
}

/// Writes the kubeconfig under `key` of Secret `secret` unless it is still good; `mint` is
/// called only when a new token is needed. Other keys of the Secret are kept.
#[allow(clippy::too_many_arguments)]
pub async fn write_token_kubeconfig<S, F, Fut>(
    store: &S,
    secret: &str,
    key: &str,
    labels: &BTreeMap<String, String>,
    cluster: &NamedCluster,
    names: (&str, Option<&str>),
    now: i64,
    mint: F,
) -> anyhow::Result<Outcome>
where
    S: SecretStore,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Token>>,
{
    let (user_and_context, namespace) = names;
    let current = store.get(secret).await?;
    if still_good(current.as_ref().map(|s| &s.data), key, cluster, now) {
        return Ok(Outcome::Unchanged);
    }
    let token = mint().await?;
    let built = kubeconfig::single(
        cluster.clone(),
        user_and_context,
        Credentials::Token(&token.token),
        user_and_context,
        namespace,
    );
    let yaml = kubeconfig::to_yaml(&built)?.into_bytes();
    upsert(store, secret, labels, |current| {
        if still_good(current, key, cluster, now) {
            // Written by a concurrent run meanwhile: keep it.
            return Ok(None);
        }
        let mut data = current.cloned().unwrap_or_default();
        data.insert(key.to_owned(), yaml.clone());
        Ok(Some(data))
    })
    .await
}

/// The cluster entry of the hosting cluster, for its own pods.
pub fn hosting_cluster(name: &str, server: &str, ca_pem: &str) -> NamedCluster {
    kubeconfig::cluster(name, server, ca_pem)
}

/// The cluster entry and namespace of the bootstrap kubeconfig's current context, checked to
/// be usable from inside a pod (inline CA, no files).
pub fn adopted_cluster(bootstrap: &Kubeconfig) -> anyhow::Result<(NamedCluster, Option<String>)> {
    let current = kubeconfig::current(bootstrap)?;
    let cluster = current.cluster.clone();
    let details = cluster.cluster.as_ref().with_context(|| {
        format!(
            "cluster {:?} of the bootstrap kubeconfig is empty",
            cluster.name
        )
    })?;
    if details.server.as_deref().is_none_or(str::is_empty) {
        bail!(
            "cluster {:?} of the bootstrap kubeconfig has no server",
            cluster.name
        );
    }
    if details.certificate_authority.is_some() {
        bail!(
            "cluster {:?} of the bootstrap kubeconfig refers to a CA file, which the adopt Job \
             cannot read; store the kubeconfig with certificate-authority-data (kubectl config \
             view --flatten)",
            cluster.name
        );
    }
    let namespace = current
        .context
        .context
        .as_ref()
        .and_then(|c| c.namespace.clone());
    Ok((cluster, namespace))
}

/// KubeFlex's names on the adopted cluster.
pub const ADOPTED_NAMESPACE: &str = "kube-system";
pub const ADOPTED_SERVICE_ACCOUNT: &str = "kubeflex";
pub const ADOPTED_BINDING: &str = "kubeflex-clusterrolebinding";

/// Ensures ServiceAccount kube-system/kubeflex and its binding to cluster-admin on the adopted
/// cluster (created if absent; an existing binding must bind exactly that).
pub async fn ensure_adopted_identity(client: &kube::Client) -> anyhow::Result<()> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ADOPTED_NAMESPACE);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(ADOPTED_SERVICE_ACCOUNT.to_owned()),
            namespace: Some(ADOPTED_NAMESPACE.to_owned()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    create_if_absent(&accounts, &account, "ServiceAccount kube-system/kubeflex").await?;
    let subject = Subject {
        kind: "ServiceAccount".to_owned(),
        name: ADOPTED_SERVICE_ACCOUNT.to_owned(),
        namespace: Some(ADOPTED_NAMESPACE.to_owned()),
        api_group: None,
    };
    let role_ref = RoleRef {
        api_group: "rbac.authorization.k8s.io".to_owned(),
        kind: "ClusterRole".to_owned(),
        name: "cluster-admin".to_owned(),
    };
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(ADOPTED_BINDING.to_owned()),
            ..ObjectMeta::default()
        },
        role_ref: role_ref.clone(),
        subjects: Some(vec![subject.clone()]),
    };
    create_if_absent(
        &bindings,
        &binding,
        "ClusterRoleBinding kubeflex-clusterrolebinding",
    )
    .await?;
    let live = bindings
        .get(ADOPTED_BINDING)
        .await
        .map_err(|err| anyhow::anyhow!("reading ClusterRoleBinding {ADOPTED_BINDING}: {err}"))?;
    let binds_it = live.role_ref == role_ref
        && live.subjects.unwrap_or_default().iter().any(|s| {
            s.kind == subject.kind && s.name == subject.name && s.namespace == subject.namespace
        });
    if !binds_it {
        bail!(
            "ClusterRoleBinding {ADOPTED_BINDING} on the adopted cluster exists but does not bind \
             cluster-admin to ServiceAccount kube-system/kubeflex"
        );
    }
    Ok(())
}

async fn create_if_absent<K>(api: &Api<K>, object: &K, what: &str) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
        Err(kube::Error::Api(status)) => bail!(
            "creating {what} failed: {} ({})",
            status.message,
            status.code
        ),
        Err(err) => bail!("creating {what} failed: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::bootstrap::secrets::MemorySecrets;

    fn jwt(iat: i64, exp: i64) -> String {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"iat":{iat},"exp":{exp}}}"#));
        format!("eyJhbGciOiJSUzI1NiJ9.{payload}.sig")
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn a_token_is_minted_only_when_missing_due_or_for_another_cluster() {
        let store = MemorySecrets::new("hosting-system");
        let cluster = hosting_cluster("hosting", "https://kubernetes.default.svc", "CA");
        let mut minted = 0;
        let mut run = |now: i64, cluster: &NamedCluster| {
            block_on(write_token_kubeconfig(
                &store,
                "admin-kubeconfig",
                "kubeconfig-incluster",
                &BTreeMap::new(),
                cluster,
                ("hosting", None),
                now,
                || {
                    minted += 1;
                    async move {
                        Ok(Token {
                            token: jwt(now, now + 3000),
                            expires: now + 3000,
                        })
                    }
                },
            ))
            .unwrap()
        };
        assert_eq!(run(1000, &cluster), Outcome::Created);
        assert_eq!(run(2000, &cluster), Outcome::Unchanged, "two thirds left");
        assert_eq!(
            run(3000, &cluster),
            Outcome::Updated,
            "a third left: renewed"
        );
        let moved = hosting_cluster("hosting", "https://other:443", "CA");
        assert_eq!(run(3001, &moved), Outcome::Updated, "another server");
        assert_eq!(minted, 3);
    }

    #[test]
    fn a_bootstrap_kubeconfig_with_a_ca_file_is_refused() {
        let mut cluster = hosting_cluster("adopted", "https://1.2.3.4:6443", "CA");
        if let Some(details) = cluster.cluster.as_mut() {
            details.certificate_authority_data = None;
            details.certificate_authority = Some("/home/me/ca.crt".into());
        }
        let bootstrap =
            kubeconfig::single(cluster, "me", Credentials::Token("t"), "ctx", Some("ns"));
        let err = adopted_cluster(&bootstrap).unwrap_err();
        assert!(
            err.to_string().contains("certificate-authority-data"),
            "{err}"
        );
    }
}
