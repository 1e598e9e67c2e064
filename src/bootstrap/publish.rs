//! `kflex bootstrap publish-kubeconfig`: a control plane's own kubeconfig, published in a
//! Secret for use from outside and inside the hosting cluster. The source is the file k3s
//! writes, or the key vCluster's syncer writes into a Secret. Each published key is the source
//! with every cluster's server replaced; other keys of the Secret are left alone (optionally
//! dropping empty ones, which KubeFlex's CLI would wait on forever).

use std::path::PathBuf;

use anyhow::Context as _;

use super::kubeconfig;
use super::secrets::{Outcome, SecretData, SecretStore, upsert};

/// Where the server's kubeconfig comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A file the server writes (k3s).
    File(PathBuf),
    /// A key of a Secret in the same namespace (vCluster's vc-vcluster).
    Secret { name: String, key: String },
}

/// A key to publish and the server it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub key: String,
    pub endpoint: kubeconfig::Endpoint,
}

impl Published {
    /// `key` naming `server` (its host the certificate name).
    pub fn at(key: &str, server: &str) -> Self {
        Self {
            key: key.to_owned(),
            endpoint: kubeconfig::Endpoint::plain(server),
        }
    }
}

/// The Secret's data with every `published` key made from `source` (a kubeconfig), or `None`
/// if it already is so.
pub fn plan(
    current: Option<&SecretData>,
    source: &[u8],
    published: &[Published],
    drop_empty_keys: bool,
) -> anyhow::Result<Option<SecretData>> {
    let parsed = kubeconfig::parse(source)?;
    let mut data = current.cloned().unwrap_or_default();
    for Published { key, endpoint } in published {
        let moved = kubeconfig::with_endpoint(&parsed, endpoint)?;
        data.insert(key.clone(), kubeconfig::to_yaml(&moved)?.into_bytes());
    }
    if drop_empty_keys {
        data.retain(|_, value| !value.is_empty());
    }
    Ok((current != Some(&data)).then_some(data))
}

/// Publishes from `source` into Secret `secret`; `None` while the source does not exist yet.
pub async fn publish<S: SecretStore>(
    store: &S,
    secret: &str,
    source: &Source,
    published: &[Published],
    drop_empty_keys: bool,
    labels: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<Option<Outcome>> {
    // The source's bytes, unless the source is the Secret being written (read with it below).
    let read_apart = match source {
        Source::File(path) => match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        },
        Source::Secret { name, key } if name != secret => {
            let bytes = store
                .get(name)
                .await?
                .and_then(|found| found.data.get(key).cloned())
                .filter(|bytes| !bytes.is_empty());
            match bytes {
                Some(bytes) => Some(bytes),
                None => return Ok(None),
            }
        }
        Source::Secret { .. } => None,
    };
    let own_key = match source {
        Source::Secret { key, .. } => key.as_str(),
        Source::File(_) => "",
    };
    let mut missing = false;
    let outcome = upsert(store, secret, labels, |current| {
        let source_bytes = match &read_apart {
            Some(bytes) => bytes.as_slice(),
            None => match current
                .and_then(|d| d.get(own_key))
                .filter(|b| !b.is_empty())
            {
                Some(bytes) => bytes.as_slice(),
                None => {
                    missing = true;
                    return Ok(None);
                }
            },
        };
        plan(current, source_bytes, published, drop_empty_keys)
    })
    .await?;
    Ok((!missing).then_some(outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::kubeconfig::{Credentials, cluster, single, to_yaml};

    fn source(server: &str) -> Vec<u8> {
        let config = single(
            cluster("default", server, "CA"),
            "default",
            Credentials::Token("t"),
            "default",
            None,
        );
        to_yaml(&config).unwrap().into_bytes()
    }

    fn server_of(data: &SecretData, key: &str) -> String {
        let parsed = kubeconfig::parse(&data[key]).unwrap();
        kubeconfig::current(&parsed)
            .unwrap()
            .server()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn every_published_key_names_its_server_and_other_keys_stay() {
        let published = [
            Published::at("config", "https://edge.example.com:9443"),
            Published::at("config-incluster", "https://k3s.edge-system.svc"),
        ];
        let current = SecretData::from([("token".to_owned(), b"kept".to_vec())]);
        let data = plan(
            Some(&current),
            &source("https://127.0.0.1:6443"),
            &published,
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(server_of(&data, "config"), "https://edge.example.com:9443");
        assert_eq!(
            server_of(&data, "config-incluster"),
            "https://k3s.edge-system.svc"
        );
        assert_eq!(data["token"], b"kept");
        let again = plan(
            Some(&data),
            &source("https://127.0.0.1:6443"),
            &published,
            false,
        )
        .unwrap();
        assert!(again.is_none(), "publishing twice changes nothing");
    }

    #[test]
    fn empty_keys_are_dropped_on_request() {
        let current = SecretData::from([
            ("config".to_owned(), source("https://localhost:8443")),
            ("token".to_owned(), Vec::new()),
        ]);
        let published = [Published::at(
            "config-incluster",
            "https://vcluster.vc-system",
        )];
        let data = plan(Some(&current), &current["config"], &published, true)
            .unwrap()
            .unwrap();
        assert!(!data.contains_key("token"));
        assert_eq!(
            server_of(&data, "config"),
            "https://localhost:8443",
            "vCluster's key is untouched"
        );
    }

    #[test]
    fn the_load_balancer_address_is_published_with_the_host_as_certificate_name() {
        let endpoint = kubeconfig::Endpoint {
            server: "https://203.0.113.7:9443".into(),
            tls_server_name: Some("vc.example.com".into()),
        };
        let published = [
            Published {
                key: "config".into(),
                endpoint,
            },
            Published::at("config-incluster", "https://vcluster.vc-system"),
        ];
        // vCluster's own key is the source and is rewritten in place.
        let current =
            SecretData::from([("config".to_owned(), source("https://vc.example.com:9443"))]);
        let data = plan(Some(&current), &current["config"], &published, false)
            .unwrap()
            .unwrap();
        let read = |key: &str| kubeconfig::parse(&data[key]).unwrap();
        let config = read("config");
        let off = kubeconfig::current(&config).unwrap();
        assert_eq!(off.server(), Some("https://203.0.113.7:9443"));
        assert_eq!(off.tls_server_name(), Some("vc.example.com"));
        // The in-cluster key, made from the rewritten source, names its server alone.
        let in_cluster = read("config-incluster");
        assert_eq!(
            kubeconfig::current(&in_cluster).unwrap().tls_server_name(),
            None
        );
        // The next pass reads its own output and changes nothing.
        assert!(
            plan(Some(&data), &data["config"], &published, false)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_source_that_is_not_a_kubeconfig_is_an_error() {
        assert!(plan(None, b"{not yaml", &[], false).is_err());
    }
}

#[cfg(test)]
mod publishing {
    use std::collections::BTreeMap;

    use super::*;
    use crate::bootstrap::kubeconfig::{Credentials, cluster, single, to_yaml};
    use crate::bootstrap::secrets::MemorySecrets;

    fn kubeconfig_from(server: &str, ca: &str) -> Vec<u8> {
        let config = single(
            cluster("default", server, ca),
            "u",
            Credentials::Token("t"),
            "c",
            None,
        );
        to_yaml(&config).unwrap().into_bytes()
    }

    fn run(
        store: &MemorySecrets,
        secret: &str,
        source: &Source,
        drop_empty: bool,
    ) -> Option<Outcome> {
        let published = [Published::at("config-incluster", "https://in.cluster")];
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(publish(
                store,
                secret,
                source,
                &published,
                drop_empty,
                &BTreeMap::new(),
            ))
            .unwrap()
    }

    #[test]
    fn a_file_source_is_waited_for_then_published_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k3s.yaml");
        let store = MemorySecrets::new("edge-system");
        let source = Source::File(path.clone());
        assert_eq!(
            run(&store, "k3s-config", &source, false),
            None,
            "not written yet"
        );
        assert!(store.data("k3s-config").is_none());
        std::fs::write(&path, kubeconfig_from("https://127.0.0.1:6443", "CA")).unwrap();
        assert_eq!(
            run(&store, "k3s-config", &source, false),
            Some(Outcome::Created)
        );
        assert_eq!(
            run(&store, "k3s-config", &source, false),
            Some(Outcome::Unchanged)
        );
        // k3s rewrote its file (new certificates): published again.
        std::fs::write(&path, kubeconfig_from("https://127.0.0.1:6443", "CA2")).unwrap();
        assert_eq!(
            run(&store, "k3s-config", &source, false),
            Some(Outcome::Updated)
        );
    }

    #[test]
    fn the_syncer_secret_gets_its_in_cluster_key_and_loses_empty_ones() {
        let store = MemorySecrets::new("vc-system");
        let source = Source::Secret {
            name: "vc-vcluster".into(),
            key: "config".into(),
        };
        assert_eq!(
            run(&store, "vc-vcluster", &source, true),
            None,
            "no Secret yet"
        );
        store.put(
            "vc-vcluster",
            SecretData::from([
                (
                    "config".to_owned(),
                    kubeconfig_from("https://vc.example.com:9443", "CA"),
                ),
                ("token".to_owned(), Vec::new()),
            ]),
        );
        assert_eq!(
            run(&store, "vc-vcluster", &source, true),
            Some(Outcome::Updated)
        );
        let data = store.data("vc-vcluster").unwrap();
        assert!(data.contains_key("config-incluster") && !data.contains_key("token"));
        // The syncer writes its Secret again on restart: the in-cluster key comes back.
        store.put(
            "vc-vcluster",
            SecretData::from([(
                "config".to_owned(),
                kubeconfig_from("https://vc.example.com:9443", "CA"),
            )]),
        );
        assert_eq!(
            run(&store, "vc-vcluster", &source, true),
            Some(Outcome::Updated)
        );
        assert_eq!(
            run(&store, "vc-vcluster", &source, true),
            Some(Outcome::Unchanged)
        );
    }
}
