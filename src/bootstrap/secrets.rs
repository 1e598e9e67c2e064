//! Reading and writing the Secrets the bootstrap programs own, safely under concurrency: every
//! write is a create (which fails if the Secret appeared meanwhile) or a replace pinned to the
//! resourceVersion that was read (which fails if someone else wrote in between); either failure
//! re-reads and decides again. Secret values never appear in errors or logs.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

/// A Secret's data by key.
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// A Secret as read: its data and the version a replace must name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSecret {
    pub data: SecretData,
    pub resource_version: String,
    pub labels: BTreeMap<String, String>,
}

/// How a write ended when it did not succeed outright.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Created meanwhile by someone else (create), or changed since it was read (replace).
    #[error("changed concurrently")]
    Raced,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Where Secrets of one namespace are kept.
pub trait SecretStore {
    /// The namespace, for messages.
    fn namespace(&self) -> &str;
    fn get(&self, name: &str) -> impl Future<Output = anyhow::Result<Option<StoredSecret>>>;
    /// Creates the Secret; [`WriteError::Raced`] if it exists.
    fn create(
        &self,
        name: &str,
        data: &SecretData,
        labels: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), WriteError>>;
    /// Replaces the data of the Secret read at `resource_version`; [`WriteError::Raced`] if it
    /// changed since (or is gone).
    fn replace(
        &self,
        name: &str,
        data: &SecretData,
        labels: &BTreeMap<String, String>,
        resource_version: &str,
    ) -> impl Future<Output = Result<(), WriteError>>;
}

/// What [`upsert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

impl Outcome {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "up to date",
        }
    }
}

/// How often [`upsert`] re-reads after losing a race before giving up.
const ATTEMPTS: usize = 5;

/// Brings Secret `name` to what `decide` wants given its current data (`None`: absent):
/// `Some(data)` writes it, `None` leaves the Secret as it is. Races re-read and decide again.
pub async fn upsert<S: SecretStore>(
    store: &S,
    name: &str,
    labels: &BTreeMap<String, String>,
    mut decide: impl FnMut(Option<&SecretData>) -> anyhow::Result<Option<SecretData>>,
) -> anyhow::Result<Outcome> {
    let describe = || format!("Secret {}/{name}", store.namespace());
    for _ in 0..ATTEMPTS {
        let current = store.get(name).await?;
        let Some(wanted) = decide(current.as_ref().map(|s| &s.data))? else {
            return Ok(Outcome::Unchanged);
        };
        let written = match &current {
            None => store
                .create(name, &wanted, labels)
                .await
                .map(|()| Outcome::Created),
            Some(current) => {
                // Keep labels others set; add ours.
                let mut merged = current.labels.clone();
                merged.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                store
                    .replace(name, &wanted, &merged, &current.resource_version)
                    .await
                    .map(|()| Outcome::Updated)
            }
        };
        match written {
            Ok(outcome) => return Ok(outcome),
            Err(WriteError::Raced) => continue,
            Err(WriteError::Other(err)) => {
                return Err(err.context(format!("writing {}", describe())));
            }
        }
    }
    anyhow::bail!(
        "{} kept changing while it was being written ({ATTEMPTS} attempts); is another program writing it?",
        describe()
    )
}

/// Secrets in one namespace of a Kubernetes API server.
#[derive(Clone)]
pub struct KubeSecrets {
    api: Api<Secret>,
    namespace: String,
}

impl std::fmt::Debug for KubeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSecrets")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl KubeSecrets {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
        }
    }

    fn object(
        &self,
        name: &str,
        data: &SecretData,
        labels: &BTreeMap<String, String>,
        resource_version: Option<&str>,
    ) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(self.namespace.clone()),
                labels: (!labels.is_empty()).then(|| labels.clone()),
                resource_version: resource_version.map(str::to_owned),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.clone())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }
}

/// A kube error as a message without request bodies (which could hold Secret data).
fn api_error(action: &str, namespace: &str, name: &str, err: kube::Error) -> anyhow::Error {
    let detail = match &err {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    };
    anyhow::anyhow!("{action} Secret {namespace}/{name} failed: {detail}")
}

impl SecretStore for KubeSecrets {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    async fn get(&self, name: &str) -> anyhow::Result<Option<StoredSecret>> {
        let secret = self
            .api
            .get_opt(name)
            .await
            .map_err(|err| api_error("reading", &self.namespace, name, err))?;
        Ok(secret.map(|secret| StoredSecret {
            resource_version: secret.metadata.resource_version.unwrap_or_default(),
            labels: secret.metadata.labels.unwrap_or_default(),
            data: secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect(),
        }))
    }

    async fn create(
        &self,
        name: &str,
        data: &SecretData,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), WriteError> {
        let secret = self.object(name, data, labels, None);
        match self.api.create(&PostParams::default(), &secret).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_already_exists() => Err(WriteError::Raced),
            Err(err) => Err(api_error("creating", &self.namespace, name, err).into()),
        }
    }

    async fn replace(
        &self,
        name: &str,
        data: &SecretData,
        labels: &BTreeMap<String, String>,
        resource_version: &str,
    ) -> Result<(), WriteError> {
        let secret = self.object(name, data, labels, Some(resource_version));
        match self
            .api
            .replace(name, &PostParams::default(), &secret)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_conflict() || status.is_not_found() => {
                Err(WriteError::Raced)
            }
            Err(err) => Err(api_error("updating", &self.namespace, name, err).into()),
        }
    }
}

/// Secrets kept in memory: for the programs' tests, and for composing a result before writing.
#[derive(Debug, Default)]
pub struct MemorySecrets {
    namespace: String,
    secrets: Mutex<BTreeMap<String, StoredSecret>>,
    version: Mutex<u64>,
}

impl MemorySecrets {
    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            ..Self::default()
        }
    }

    /// The data of Secret `name`, if it exists.
    pub fn data(&self, name: &str) -> Option<SecretData> {
        self.lock().get(name).map(|s| s.data.clone())
    }

    /// The labels of Secret `name`, if it exists.
    pub fn labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.lock().get(name).map(|s| s.labels.clone())
    }

    /// Writes `data` as someone else would (bumping the version).
    pub fn put(&self, name: &str, data: SecretData) {
        let version = self.next_version();
        let mut secrets = self.lock();
        let labels = secrets
            .get(name)
            .map(|s| s.labels.clone())
            .unwrap_or_default();
        secrets.insert(
            name.to_owned(),
            StoredSecret {
                data,
                resource_version: version,
                labels,
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StoredSecret>> {
        self.secrets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn next_version(&self) -> String {
        let mut version = self.version.lock().unwrap_or_else(|p| p.into_inner());
        *version += 1;
        version.to_string()
    }
}

impl SecretStore for MemorySecrets {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    async fn get(&self, name: &str) -> anyhow::Result<Option<StoredSecret>> {
        Ok(self.lock().get(name).cloned())
    }

    async fn create(
        &self,
        name: &str,
        data: &SecretData,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), WriteError> {
        let version = self.next_version();
        let mut secrets = self.lock();
        if secrets.contains_key(name) {
            return Err(WriteError::Raced);
        }
        secrets.insert(
            name.to_owned(),
            StoredSecret {
                data: data.clone(),
                resource_version: version,
                labels: labels.clone(),
            },
        );
        Ok(())
    }

    async fn replace(
        &self,
        name: &str,
        data: &SecretData,
        labels: &BTreeMap<String, String>,
        resource_version: &str,
    ) -> Result<(), WriteError> {
        let version = self.next_version();
        let mut secrets = self.lock();
        match secrets.get_mut(name) {
            Some(current) if current.resource_version == resource_version => {
                current.data = data.clone();
                current.labels = labels.clone();
                current.resource_version = version;
                Ok(())
            }
            _ => Err(WriteError::Raced),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> SecretData {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn creates_then_leaves_alone_then_updates() {
        let store = MemorySecrets::new("ns");
        let labels = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        let want = data(&[("k", "v")]);
        let decide =
            |current: Option<&SecretData>| Ok((current != Some(&want)).then(|| want.clone()));
        assert_eq!(
            block_on(upsert(&store, "s", &labels, decide)).unwrap(),
            Outcome::Created
        );
        assert_eq!(
            block_on(upsert(&store, "s", &labels, decide)).unwrap(),
            Outcome::Unchanged
        );
        store.put("s", data(&[("k", "old")]));
        assert_eq!(
            block_on(upsert(&store, "s", &labels, decide)).unwrap(),
            Outcome::Updated
        );
        assert_eq!(store.data("s").unwrap(), want);
        assert_eq!(store.labels("s").unwrap(), labels);
    }

    #[test]
    fn a_secret_written_between_read_and_write_is_decided_again() {
        let store = MemorySecrets::new("ns");
        let mut calls = 0;
        let outcome = block_on(upsert(&store, "s", &BTreeMap::new(), |current| {
            calls += 1;
            if calls == 1 {
                // Someone else creates it after our read, before our create.
                store.put("s", data(&[("k", "theirs")]));
                return Ok(Some(data(&[("k", "ours")])));
            }
            // Seen again: theirs is acceptable.
            assert_eq!(current.unwrap(), &data(&[("k", "theirs")]));
            Ok(None)
        }))
        .unwrap();
        assert_eq!(outcome, Outcome::Unchanged);
        assert_eq!(calls, 2);
        assert_eq!(store.data("s").unwrap(), data(&[("k", "theirs")]));
    }

    #[test]
    fn endless_races_give_up_with_a_clear_error() {
        let store = MemorySecrets::new("ns");
        store.put("s", data(&[("k", "0")]));
        let err = block_on(upsert(&store, "s", &BTreeMap::new(), |_| {
            store.put("s", data(&[("k", "1")]));
            Ok(Some(data(&[("k", "2")])))
        }))
        .unwrap_err();
        assert!(err.to_string().contains("kept changing"), "{err}");
    }
}
