//! `kflex bootstrap kubeconfig`: the k8s control plane's kubeconfig Secrets, with client
//! certificates from its CA. `admin-kubeconfig` holds `kubeconfig` (the off-cluster server) and
//! `kubeconfig-incluster` (the in-cluster one), each with its own key; `cm-kubeconfig` holds the
//! controller manager's. A kubeconfig is made again when it is missing, points at another
//! server, trusts another CA, or its client certificate is from another CA, for another user, or
//! due for renewal; otherwise it is left exactly as it is.

use std::time::Duration;

use time::OffsetDateTime;

use super::kubeconfig::{self, Credentials};
use super::pki::{self, Authority, LeafSpec};
use super::secrets::SecretData;

/// Who a kubeconfig is for.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The user entry's name.
    pub user: String,
    pub common_name: String,
    pub organizations: Vec<String>,
}

/// One kubeconfig to hold under a Secret key.
#[derive(Clone, Debug)]
pub struct Wanted {
    pub key: String,
    /// The server, and the certificate name when the server does not give it.
    pub endpoint: kubeconfig::Endpoint,
    pub identity: Identity,
}

/// The names KubeFlex gives a control plane's kubeconfigs.
#[derive(Clone, Debug)]
pub struct Names {
    /// The context, `<cp>`.
    pub context: String,
    /// The cluster entry, `<cp>-cluster`.
    pub cluster: String,
}

impl Names {
    pub fn for_control_plane(control_plane: &str) -> Self {
        Self {
            context: control_plane.to_owned(),
            cluster: format!("{control_plane}-cluster"),
        }
    }
}

/// The administrator (group system:masters), as KubeFlex names it.
pub fn admin(control_plane: &str) -> Identity {
    Identity {
        user: format!("{control_plane}-admin"),
        common_name: "kubernetes-admin".to_owned(),
        organizations: vec!["system:masters".to_owned()],
    }
}

/// The controller manager.
pub fn controller_manager() -> Identity {
    Identity {
        user: "system:kube-controller-manager".to_owned(),
        common_name: "system:kube-controller-manager".to_owned(),
        organizations: Vec::new(),
    }
}

/// Whether `bytes` is a kubeconfig that still does what `wanted` asks.
fn still_good(bytes: &[u8], wanted: &Wanted, names: &Names, ca: &Authority, now: i64) -> bool {
    let Ok(parsed) = kubeconfig::parse(bytes) else {
        return false;
    };
    let Ok(current) = kubeconfig::current(&parsed) else {
        return false;
    };
    let Some(cert) = current.client_cert_pem() else {
        return false;
    };
    let Ok(facts) = pki::leaf_facts(&cert) else {
        return false;
    };
    current.context.name == names.context
        && current.cluster.name == names.cluster
        && current.user.is_some_and(|u| u.name == wanted.identity.user)
        && current.server() == Some(wanted.endpoint.server.as_str())
        && current.tls_server_name() == wanted.endpoint.tls_server_name.as_deref()
        && current.ca_pem().as_deref() == Some(ca.cert_pem.as_str())
        && ca.issued(&cert)
        && facts.common_name == wanted.identity.common_name
        && facts.organizations == wanted.identity.organizations
        && !pki::due_for_renewal(facts.not_before, facts.not_after, now)
}

/// The Secret's data with every `wanted` kubeconfig good, or `None` if it already was. Keys
/// not in `wanted` are kept.
pub fn plan(
    existing: Option<&SecretData>,
    wanted: &[Wanted],
    names: &Names,
    ca: &Authority,
    client_lifetime: Duration,
    now: OffsetDateTime,
) -> anyhow::Result<Option<SecretData>> {
    let mut data = existing.cloned().unwrap_or_default();
    for want in wanted {
        let good = data
            .get(&want.key)
            .is_some_and(|bytes| still_good(bytes, want, names, ca, now.unix_timestamp()));
        if good {
            continue;
        }
        let organizations: Vec<&str> = want
            .identity
            .organizations
            .iter()
            .map(String::as_str)
            .collect();
        let issued = ca.issue(
            &LeafSpec::client(&want.identity.common_name, &organizations),
            now,
            client_lifetime,
        )?;
        let built = kubeconfig::single(
            kubeconfig::cluster_at(&names.cluster, &want.endpoint, &ca.cert_pem),
            &want.identity.user,
            Credentials::ClientCertificate {
                cert_pem: &issued.cert_pem,
                key_pem: &issued.key_pem,
            },
            &names.context,
            Some("default"),
        );
        data.insert(want.key.clone(), kubeconfig::to_yaml(&built)?.into_bytes());
    }
    Ok((existing != Some(&data)).then_some(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    const YEAR: Duration = Duration::from_secs(365 * 86_400);

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn wanted(server: &str) -> Vec<Wanted> {
        vec![Wanted {
            key: "kubeconfig".into(),
            endpoint: kubeconfig::Endpoint::plain(server),
            identity: admin("cp1"),
        }]
    }

    #[test]
    fn a_kubeconfig_is_kept_until_something_it_depends_on_changes() {
        let ca = Authority::generate("kubernetes", now(), YEAR * 10).unwrap();
        let names = Names::for_control_plane("cp1");
        let remade = |existing: &SecretData, server: &str, ca: &Authority, at: OffsetDateTime| {
            plan(Some(existing), &wanted(server), &names, ca, YEAR, at)
                .unwrap()
                .is_some()
        };
        let first = plan(None, &wanted("https://a:1"), &names, &ca, YEAR, now())
            .unwrap()
            .unwrap();
        assert!(!remade(&first, "https://a:1", &ca, now()));
        // Another server, another CA, or a client certificate due for renewal: made again.
        assert!(remade(&first, "https://b:1", &ca, now()));
        let other = Authority::generate("kubernetes", now(), YEAR * 10).unwrap();
        assert!(remade(&first, "https://a:1", &other, now()));
        assert!(remade(
            &first,
            "https://a:1",
            &ca,
            now() + time::Duration::days(250)
        ));
        // The load balancer's address with the host as certificate name: made again, then kept.
        let at_address = vec![Wanted {
            key: "kubeconfig".into(),
            endpoint: kubeconfig::Endpoint {
                server: "https://203.0.113.7:1".into(),
                tls_server_name: Some("a".into()),
            },
            identity: admin("cp1"),
        }];
        let moved = plan(Some(&first), &at_address, &names, &ca, YEAR, now())
            .unwrap()
            .unwrap();
        assert!(
            plan(Some(&moved), &at_address, &names, &ca, YEAR, now())
                .unwrap()
                .is_none()
        );
        assert!(
            remade(&moved, "https://203.0.113.7:1", &ca, now()),
            "no certificate name"
        );
        // Unrelated keys stay.
        let mut with_extra = first.clone();
        with_extra.insert("other".into(), b"x".to_vec());
        assert!(!remade(&with_extra, "https://a:1", &ca, now()));
    }
}
