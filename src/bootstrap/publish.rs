//! `kflex bootstrap publish-kubeconfig`: a control plane's own kubeconfig, published in a
//! Secret for use from outside and inside the hosting cluster. The source is the file k3s
//! writes, or the key vCluster's syncer writes into a Secret. Each published key is the source
//! with every cluster's server replaced; other keys of the Secret are left alone (optionally
//! dropping empty ones, which KubeFlex's CLI would wait on forever).

use super::kubeconfig;
use super::secrets::SecretData;

/// A key to publish and the server it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub key: String,
    pub server: String,
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
    for Published { key, server } in published {
        let moved = kubeconfig::with_server(&parsed, server)?;
        data.insert(key.clone(), kubeconfig::to_yaml(&moved)?.into_bytes());
    }
    if drop_empty_keys {
        data.retain(|_, value| !value.is_empty());
    }
    Ok((current != Some(&data)).then_some(data))
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
            Published {
                key: "config".into(),
                server: "https://edge.example.com:9443".into(),
            },
            Published {
                key: "config-incluster".into(),
                server: "https://k3s.edge-system.svc".into(),
            },
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
        let published = [Published {
            key: "config-incluster".into(),
            server: "https://vcluster.vc-system".into(),
        }];
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
    fn a_source_that_is_not_a_kubeconfig_is_an_error() {
        assert!(plan(None, b"{not yaml", &[], false).is_err());
    }
}
