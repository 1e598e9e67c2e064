//! Certificate authorities and the certificates they issue, kept in a Secret as `<name>.crt` /
//! `<name>.key` PEM pairs: what to keep, what to issue, and when to renew.
//!
//! Keys are ECDSA P-256. Serial numbers are random; every certificate carries a subject key
//! identifier and every issued one an authority key identifier equal to its CA's. A CA is
//! created once and kept; a leaf is issued again when it is missing, issued by another CA, for
//! other names than asked, or has less than a third of its lifetime left.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData as _, SanType, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::random;
use super::secrets::SecretData;

/// How far back a new certificate's validity starts, for clocks that lag behind this one.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// A certificate authority: its certificate and key.
#[derive(Debug)]
pub struct Authority {
    pub cert_pem: String,
    pub key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    key_id: Vec<u8>,
}

/// What a leaf certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
}

/// A leaf certificate to hold: its names and use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafSpec {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub usage: Usage,
}

impl LeafSpec {
    pub fn client(common_name: &str, organizations: &[&str]) -> Self {
        Self {
            common_name: common_name.to_owned(),
            organizations: organizations.iter().map(|o| (*o).to_owned()).collect(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            usage: Usage::Client,
        }
    }
}

/// A certificate and its key, PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The lifetimes of new certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    pub authority: Duration,
    pub leaf: Duration,
}

fn offset(now: OffsetDateTime, by: Duration) -> anyhow::Result<OffsetDateTime> {
    now.checked_add(time::Duration::try_from(by).context("a validity that long")?)
        .context("a validity that long")
}

fn validity(
    params: &mut CertificateParams,
    now: OffsetDateTime,
    lifetime: Duration,
) -> anyhow::Result<()> {
    params.not_before = now - time::Duration::try_from(BACKDATE).context("backdate")?;
    params.not_after = offset(now, lifetime)?;
    params.serial_number = Some(SerialNumber::from_slice(&random::serial()?));
    params.key_identifier_method = rcgen::KeyIdMethod::Sha256;
    Ok(())
}

impl Authority {
    /// A new self-signed CA named `common_name`.
    pub fn generate(
        common_name: &str,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> anyhow::Result<Self> {
        let key = KeyPair::generate().context("generating a CA key")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, now, lifetime)?;
        let cert = params
            .self_signed(&key)
            .with_context(|| format!("creating CA {common_name}"))?;
        Self::load(&cert.pem(), &key.serialize_pem())
    }

    /// The CA stored as `cert_pem` and `key_pem`; an error if they do not belong together or
    /// the certificate is not a CA.
    pub fn load(cert_pem: &str, key_pem: &str) -> anyhow::Result<Self> {
        let key = KeyPair::from_pem(key_pem).context("the CA key is not a PEM private key")?;
        let der = pem_to_der(cert_pem).context("the CA certificate")?;
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|err| anyhow::anyhow!("the CA certificate does not parse: {err}"))?;
        if !cert.is_ca() {
            bail!("the CA certificate is not a CA (basicConstraints)");
        }
        if cert.public_key().raw != key.subject_public_key_info().as_slice() {
            bail!("the CA key does not belong to the CA certificate");
        }
        let key_id =
            subject_key_id(&cert).context("the CA certificate has no subject key identifier")?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).context("the CA certificate")?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            issuer,
            key_id,
        })
    }

    /// Issues a certificate for `spec` with a new key.
    pub fn issue(
        &self,
        spec: &LeafSpec,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> anyhow::Result<Issued> {
        let key = KeyPair::generate().context("generating a key")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, spec.common_name.as_str());
        for organization in &spec.organizations {
            params
                .distinguished_name
                .push(DnType::OrganizationName, organization.as_str());
        }
        for name in &spec.dns_names {
            let name = name
                .clone()
                .try_into()
                .with_context(|| format!("{name:?} is not a DNS name"))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params
            .subject_alt_names
            .extend(spec.ip_addresses.iter().map(|ip| SanType::IpAddress(*ip)));
        // A leaf says so (basicConstraints CA:false) and carries its own key identifier.
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match spec.usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        validity(&mut params, now, lifetime)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .with_context(|| format!("issuing the certificate for {}", spec.common_name))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Whether `cert_pem` was issued by this CA (its authority key identifier is this CA's).
    pub fn issued(&self, cert_pem: &str) -> bool {
        let Ok(der) = pem_to_der(cert_pem) else {
            return false;
        };
        let Ok((_, cert)) = X509Certificate::from_der(&der) else {
            return false;
        };
        authority_key_id(&cert).is_some_and(|id| id == self.key_id)
    }
}

/// The DER of the first certificate in `pem`.
pub fn pem_to_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|err| anyhow::anyhow!("not a PEM certificate: {err}"))?;
    if block.label != "CERTIFICATE" {
        bail!("not a PEM certificate (found {})", block.label);
    }
    Ok(block.contents)
}

fn subject_key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
}

fn authority_key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|id| id.0.to_vec())
            }
            _ => None,
        })
}

/// What a stored leaf certificate is, as far as renewal cares.
#[derive(Debug)]
pub struct LeafFacts {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub not_before: i64,
    pub not_after: i64,
}

/// Reads the facts of `cert_pem`.
pub fn leaf_facts(cert_pem: &str) -> anyhow::Result<LeafFacts> {
    let der = pem_to_der(cert_pem)?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|err| anyhow::anyhow!("the certificate does not parse: {err}"))?;
    let attribute = |values: Vec<&str>| values.into_iter().map(str::to_owned).collect::<Vec<_>>();
    let common_name = attribute(
        cert.subject()
            .iter_common_name()
            .filter_map(|a| a.as_str().ok())
            .collect(),
    )
    .into_iter()
    .next()
    .unwrap_or_default();
    let organizations = attribute(
        cert.subject()
            .iter_organization()
            .filter_map(|a| a.as_str().ok())
            .collect(),
    );
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    ip_addresses.extend(ip);
                }
                _ => {}
            }
        }
    }
    Ok(LeafFacts {
        common_name,
        organizations,
        dns_names,
        ip_addresses,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// Whether a certificate valid from `not_before` to `not_after` (Unix seconds) should be
/// replaced at `now`: less than a third of its lifetime left, or not valid at all.
pub fn due_for_renewal(not_before: i64, not_after: i64, now: i64) -> bool {
    let lifetime = not_after - not_before;
    lifetime <= 0 || now < not_before || now >= not_after - lifetime / 3
}

/// Whether the stored `cert_pem` still serves `spec` at `now`: issued by `authority`, for the
/// same names, and not due for renewal.
fn still_good(authority: &Authority, cert_pem: &str, spec: &LeafSpec, now: i64) -> bool {
    if !authority.issued(cert_pem) {
        return false;
    }
    let Ok(facts) = leaf_facts(cert_pem) else {
        return false;
    };
    let same = |a: &[String], b: &[String]| {
        let mut a = a.to_vec();
        let mut b = b.to_vec();
        a.sort();
        b.sort();
        a == b
    };
    let mut ips = facts.ip_addresses.clone();
    let mut wanted_ips = spec.ip_addresses.clone();
    ips.sort();
    wanted_ips.sort();
    facts.common_name == spec.common_name
        && same(&facts.organizations, &spec.organizations)
        && same(&facts.dns_names, &spec.dns_names)
        && ips == wanted_ips
        && !due_for_renewal(facts.not_before, facts.not_after, now)
}

/// The text of key `key` of `data`, if present and UTF-8.
pub fn text<'a>(data: &'a SecretData, key: &str) -> Option<&'a str> {
    data.get(key).and_then(|v| std::str::from_utf8(v).ok())
}

/// The CA stored under `<name>.crt`/`<name>.key` of `data`, or a new one if there is none.
/// A stored CA that cannot be used is an error, never silently replaced: everything it signed
/// would stop working.
pub fn keep_or_create_authority(
    data: &mut SecretData,
    name: &str,
    common_name: &str,
    now: OffsetDateTime,
    lifetime: Duration,
) -> anyhow::Result<Authority> {
    let cert_key = format!("{name}.crt");
    let key_key = format!("{name}.key");
    match (text(data, &cert_key), text(data, &key_key)) {
        (Some(cert), Some(key)) => {
            let authority = Authority::load(cert, key).with_context(|| {
                format!("{cert_key} and {key_key} do not hold a usable CA; delete the Secret to start over")
            })?;
            let facts = leaf_facts(cert).with_context(|| cert_key.clone())?;
            if facts.not_after <= now.unix_timestamp() {
                bail!("the CA in {cert_key} has expired; delete the Secret to start over");
            }
            Ok(authority)
        }
        (None, None) => {
            let authority = Authority::generate(common_name, now, lifetime)?;
            data.insert(cert_key, authority.cert_pem.clone().into_bytes());
            data.insert(key_key, authority.key_pem.clone().into_bytes());
            Ok(authority)
        }
        _ => bail!("only one of {cert_key} and {key_key} exists; delete the Secret to start over"),
    }
}

/// Keeps the leaf under `<name>.crt`/`<name>.key` of `data` if it still serves `spec`, else
/// issues a new one from `authority`. Returns whether it issued.
pub fn keep_or_issue(
    data: &mut SecretData,
    name: &str,
    authority: &Authority,
    spec: &LeafSpec,
    now: OffsetDateTime,
    lifetime: Duration,
) -> anyhow::Result<bool> {
    let cert_key = format!("{name}.crt");
    let key_key = format!("{name}.key");
    let kept = match (text(data, &cert_key), text(data, &key_key)) {
        (Some(cert), Some(key)) => {
            KeyPair::from_pem(key).is_ok()
                && still_good(authority, cert, spec, now.unix_timestamp())
        }
        _ => false,
    };
    if kept {
        return Ok(false);
    }
    let issued = authority.issue(spec, now, lifetime)?;
    data.insert(cert_key, issued.cert_pem.into_bytes());
    data.insert(key_key, issued.key_pem.into_bytes());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn server(names: &[&str]) -> LeafSpec {
        LeafSpec {
            common_name: "kube-apiserver".into(),
            organizations: Vec::new(),
            dns_names: names.iter().map(|n| (*n).to_owned()).collect(),
            ip_addresses: vec!["127.0.0.1".parse().unwrap()],
            usage: Usage::Server,
        }
    }

    #[test]
    fn a_leaf_carries_its_names_and_the_ca_key_identifier() {
        let ca = Authority::generate("kubernetes", now(), DAY * 3650).unwrap();
        let leaf = ca
            .issue(&server(&["a.example", "b.example"]), now(), DAY * 365)
            .unwrap();
        assert!(ca.issued(&leaf.cert_pem));
        let facts = leaf_facts(&leaf.cert_pem).unwrap();
        assert_eq!(facts.common_name, "kube-apiserver");
        assert_eq!(facts.dns_names, ["a.example", "b.example"]);
        assert_eq!(facts.ip_addresses, ["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(facts.not_after - facts.not_before, 365 * 86_400 + 300);
        let other = Authority::generate("other", now(), DAY).unwrap();
        assert!(!other.issued(&leaf.cert_pem));
    }

    #[test]
    fn renewal_starts_in_the_last_third() {
        let (start, end) = (0, 300);
        assert!(!due_for_renewal(start, end, 199));
        assert!(due_for_renewal(start, end, 200));
        assert!(due_for_renewal(start, end, 301));
        assert!(due_for_renewal(start, end, -1), "not yet valid");
    }

    #[test]
    fn leaves_are_kept_until_due_or_changed() {
        let mut data = SecretData::new();
        let ca =
            keep_or_create_authority(&mut data, "ca", "kubernetes", now(), DAY * 3650).unwrap();
        let spec = server(&["a.example"]);
        assert!(keep_or_issue(&mut data, "apiserver", &ca, &spec, now(), DAY * 365).unwrap());
        let first = data.clone();
        assert!(!keep_or_issue(&mut data, "apiserver", &ca, &spec, now(), DAY * 365).unwrap());
        assert_eq!(data, first, "nothing changes while the leaf is good");
        let later = now() + time::Duration::days(250);
        assert!(keep_or_issue(&mut data, "apiserver", &ca, &spec, later, DAY * 365).unwrap());
        assert_ne!(data["apiserver.crt"], first["apiserver.crt"]);
        assert_eq!(data["ca.crt"], first["ca.crt"], "the CA is kept");
        let renamed = server(&["a.example", "c.example"]);
        assert!(keep_or_issue(&mut data, "apiserver", &ca, &renamed, later, DAY * 365).unwrap());
    }

    #[test]
    fn a_broken_ca_is_an_error_not_a_silent_replacement() {
        let mut data = SecretData::from([("ca.crt".to_owned(), b"garbage".to_vec())]);
        let err = keep_or_create_authority(&mut data, "ca", "k", now(), DAY).unwrap_err();
        assert!(
            format!("{err:#}").contains("only one of ca.crt and ca.key"),
            "{err:#}"
        );
        let a = Authority::generate("a", now(), DAY).unwrap();
        let b = Authority::generate("b", now(), DAY).unwrap();
        let mut data = SecretData::from([
            ("ca.crt".to_owned(), a.cert_pem.into_bytes()),
            ("ca.key".to_owned(), b.key_pem.into_bytes()),
        ]);
        let err = keep_or_create_authority(&mut data, "ca", "k", now(), DAY).unwrap_err();
        assert!(format!("{err:#}").contains("does not belong"), "{err:#}");
    }
}
