//! The certificate Secrets: `k8s-certs` of a k8s control plane (`kflex bootstrap pki`) and the
//! shared PostgreSQL's server certificate (`kflex bootstrap tls`). Each is decided from what
//! the Secret holds and the time: CAs are kept, leaves kept until due, missing parts made.

use std::net::IpAddr;

use anyhow::Context as _;
use rcgen::KeyPair;
use time::OffsetDateTime;

use super::pki::{self, LeafSpec, Lifetimes, Usage, keep_or_create_authority, keep_or_issue, text};
use super::secrets::SecretData;

/// The names a k8s control plane's API server certificate must carry.
#[derive(Clone, Debug)]
pub struct ApiServerNames {
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
}

/// Keys of Secret `k8s-certs`, as KubeFlex names them.
pub mod keys {
    pub const CA: &str = "ca";
    pub const FRONT_PROXY_CA: &str = "front-proxy-ca";
    pub const API_SERVER: &str = "apiserver";
    pub const KUBELET_CLIENT: &str = "apiserver-kubelet-client";
    pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";
    pub const SERVICE_ACCOUNT_KEY: &str = "sa.key";
    pub const SERVICE_ACCOUNT_PUBLIC_KEY: &str = "sa.pub";
}

/// `k8s-certs` as it should be, or `None` if `existing` already is: a CA and a separate
/// front-proxy CA (kept), the API server's serving certificate for `names`, its kubelet client
/// and front-proxy client certificates (renewed when due), and the service-account key pair
/// (kept: replacing it would invalidate every token).
pub fn k8s_certs(
    existing: Option<&SecretData>,
    names: &ApiServerNames,
    lifetimes: Lifetimes,
    now: OffsetDateTime,
) -> anyhow::Result<Option<SecretData>> {
    let mut data = existing.cloned().unwrap_or_default();
    let ca = keep_or_create_authority(&mut data, keys::CA, "kubernetes", now, lifetimes.authority)?;
    let front_proxy = keep_or_create_authority(
        &mut data,
        keys::FRONT_PROXY_CA,
        "front-proxy-ca",
        now,
        lifetimes.authority,
    )?;
    let api_server = LeafSpec {
        common_name: "kube-apiserver".to_owned(),
        organizations: Vec::new(),
        dns_names: names.dns_names.clone(),
        ip_addresses: names.ip_addresses.clone(),
        usage: Usage::Server,
    };
    keep_or_issue(
        &mut data,
        keys::API_SERVER,
        &ca,
        &api_server,
        now,
        lifetimes.leaf,
    )?;
    let kubelet_client = LeafSpec::client("kube-apiserver-kubelet-client", &[]);
    keep_or_issue(
        &mut data,
        keys::KUBELET_CLIENT,
        &ca,
        &kubelet_client,
        now,
        lifetimes.leaf,
    )?;
    // kube-apiserver accepts this name only (--requestheader-allowed-names=front-proxy-client).
    let front_proxy_client = LeafSpec::client("front-proxy-client", &[]);
    keep_or_issue(
        &mut data,
        keys::FRONT_PROXY_CLIENT,
        &front_proxy,
        &front_proxy_client,
        now,
        lifetimes.leaf,
    )?;
    keep_or_create_service_account_keys(&mut data)?;
    Ok((existing != Some(&data)).then_some(data))
}

fn keep_or_create_service_account_keys(data: &mut SecretData) -> anyhow::Result<()> {
    let private = keys::SERVICE_ACCOUNT_KEY;
    let public = keys::SERVICE_ACCOUNT_PUBLIC_KEY;
    if let (Some(key), Some(public_pem)) = (text(data, private), text(data, public)) {
        let key = KeyPair::from_pem(key)
            .with_context(|| format!("{private} is not a PEM private key"))?;
        if key.public_key_pem() != public_pem {
            anyhow::bail!(
                "{public} is not the public key of {private}; delete the Secret to start over \
                 (every service-account token of the control plane becomes invalid)"
            );
        }
        return Ok(());
    }
    if data.contains_key(private) || data.contains_key(public) {
        anyhow::bail!("only one of {private} and {public} exists; delete the Secret to start over");
    }
    let key = KeyPair::generate().context("generating the service-account key")?;
    data.insert(private.to_owned(), key.serialize_pem().into_bytes());
    data.insert(public.to_owned(), key.public_key_pem().into_bytes());
    Ok(())
}

/// The shared PostgreSQL's TLS Secret as it should be, or `None` if `existing` already is: a CA
/// (`ca.crt`, `ca.key`) and a server certificate for `dns_names` (`tls.crt`, `tls.key`).
pub fn postgres_tls(
    existing: Option<&SecretData>,
    dns_names: &[String],
    lifetimes: Lifetimes,
    now: OffsetDateTime,
) -> anyhow::Result<Option<SecretData>> {
    let mut data = existing.cloned().unwrap_or_default();
    let ca = keep_or_create_authority(
        &mut data,
        "ca",
        "kflex-postgresql-ca",
        now,
        lifetimes.authority,
    )?;
    let server = LeafSpec {
        common_name: dns_names.first().cloned().unwrap_or_default(),
        organizations: Vec::new(),
        dns_names: dns_names.to_vec(),
        ip_addresses: Vec::new(),
        usage: Usage::Server,
    };
    keep_or_issue(&mut data, "tls", &ca, &server, now, lifetimes.leaf)?;
    Ok((existing != Some(&data)).then_some(data))
}

/// The certificate and key under `<name>.crt`/`<name>.key`.
pub fn pair(data: &SecretData, name: &str) -> anyhow::Result<(String, String)> {
    let cert = text(data, &format!("{name}.crt")).with_context(|| format!("no {name}.crt"))?;
    let key = text(data, &format!("{name}.key")).with_context(|| format!("no {name}.key"))?;
    Ok((cert.to_owned(), key.to_owned()))
}

/// The CA under `<name>.crt`/`<name>.key` of `data`, loaded.
pub fn authority(data: &SecretData, name: &str) -> anyhow::Result<pki::Authority> {
    let (cert, key) = pair(data, name)?;
    pki::Authority::load(&cert, &key).with_context(|| format!("the CA in {name}.crt"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIFETIMES: Lifetimes = Lifetimes {
        authority: Duration::from_secs(10 * 365 * 86_400),
        leaf: Duration::from_secs(365 * 86_400),
    };

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn names() -> ApiServerNames {
        ApiServerNames {
            dns_names: vec!["kubernetes".into(), "cp1.example.com".into()],
            ip_addresses: vec!["127.0.0.1".parse().unwrap()],
        }
    }

    #[test]
    fn k8s_certs_holds_kubeflex_keys_and_is_stable() {
        let data = k8s_certs(None, &names(), LIFETIMES, now())
            .unwrap()
            .unwrap();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "apiserver-kubelet-client.crt",
                "apiserver-kubelet-client.key",
                "apiserver.crt",
                "apiserver.key",
                "ca.crt",
                "ca.key",
                "front-proxy-ca.crt",
                "front-proxy-ca.key",
                "front-proxy-client.crt",
                "front-proxy-client.key",
                "sa.key",
                "sa.pub",
            ]
        );
        assert_ne!(data["ca.crt"], data["front-proxy-ca.crt"], "two CAs");
        assert!(
            k8s_certs(Some(&data), &names(), LIFETIMES, now())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn renewal_replaces_leaves_and_keeps_the_cas_and_service_account_key() {
        let first = k8s_certs(None, &names(), LIFETIMES, now())
            .unwrap()
            .unwrap();
        let later = now() + time::Duration::days(250);
        let renewed = k8s_certs(Some(&first), &names(), LIFETIMES, later)
            .unwrap()
            .unwrap();
        for kept in [
            "ca.crt",
            "ca.key",
            "front-proxy-ca.crt",
            "front-proxy-ca.key",
            "sa.key",
            "sa.pub",
        ] {
            assert_eq!(renewed[kept], first[kept], "{kept}");
        }
        for replaced in [
            "apiserver.crt",
            "apiserver.key",
            "front-proxy-client.crt",
            "apiserver-kubelet-client.crt",
        ] {
            assert_ne!(renewed[replaced], first[replaced], "{replaced}");
        }
    }

    #[test]
    fn a_mismatched_service_account_pair_is_refused() {
        let mut data = k8s_certs(None, &names(), LIFETIMES, now())
            .unwrap()
            .unwrap();
        let other = KeyPair::generate().unwrap();
        data.insert("sa.pub".into(), other.public_key_pem().into_bytes());
        let err = k8s_certs(Some(&data), &names(), LIFETIMES, now()).unwrap_err();
        assert!(err.to_string().contains("not the public key"), "{err}");
    }

    #[test]
    fn postgres_tls_names_the_server() {
        let dns = vec![
            "postgres-postgresql".to_owned(),
            "postgres-postgresql.kubeflex-system".to_owned(),
        ];
        let data = postgres_tls(None, &dns, LIFETIMES, now()).unwrap().unwrap();
        let facts = pki::leaf_facts(text(&data, "tls.crt").unwrap()).unwrap();
        assert_eq!(facts.dns_names, dns);
        assert!(
            postgres_tls(Some(&data), &dns, LIFETIMES, now())
                .unwrap()
                .is_none()
        );
    }
}
