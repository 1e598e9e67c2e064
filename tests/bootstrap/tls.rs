//! The certificates and kubeconfigs `kflex bootstrap pki` and `kflex bootstrap kubeconfig`
//! make, used for real: a TLS server (rustls) serves the API server certificate and requires
//! client certificates from the CA; clients connect with what the generated kubeconfigs hold,
//! once per SAN, and kube-rs itself talks to the server with a generated kubeconfig.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kflex::bootstrap::certificates::{ApiServerNames, k8s_certs, keys};
use kflex::bootstrap::kubeconfig::Endpoint;
use kflex::bootstrap::kubeconfigs::{Names, Wanted, admin, controller_manager, plan};
use kflex::bootstrap::pki::{Authority, Lifetimes, leaf_facts, pem_to_der, text};
use kflex::bootstrap::secrets::SecretData;
use kflex::bootstrap::{certificates, kubeconfig};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer as _, X509Certificate};

const LIFETIMES: Lifetimes = Lifetimes {
    authority: Duration::from_secs(10 * 365 * 86_400),
    leaf: Duration::from_secs(365 * 86_400),
};

const SANS: [&str; 4] = [
    "kubernetes.default.svc",
    "cp1.cp1-system.svc.cluster.local",
    "cp1.localtest.me",
    "kubeflex-control-plane",
];

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn certs() -> SecretData {
    let names = ApiServerNames {
        dns_names: SANS.iter().map(|s| (*s).to_owned()).collect(),
        ip_addresses: vec!["127.0.0.1".parse().expect("an IP")],
    };
    k8s_certs(None, &names, LIFETIMES, now())
        .expect("certificates")
        .expect("new data")
}

/// The certificates without an IP address: what a load balancer's address is to them.
fn certs_without_addresses() -> SecretData {
    let names = ApiServerNames {
        dns_names: SANS.iter().map(|s| (*s).to_owned()).collect(),
        ip_addresses: Vec::new(),
    };
    k8s_certs(None, &names, LIFETIMES, now())
        .expect("certificates")
        .expect("new data")
}

fn kubeconfigs(certs: &SecretData) -> (SecretData, SecretData) {
    let ca = certificates::authority(certs, keys::CA).expect("the CA");
    let names = Names::for_control_plane("cp1");
    let admin_wanted = [
        Wanted {
            key: "kubeconfig".into(),
            endpoint: Endpoint::plain("https://cp1.localtest.me:9443"),
            identity: admin("cp1"),
        },
        Wanted {
            key: "kubeconfig-incluster".into(),
            endpoint: Endpoint::plain("https://cp1.cp1-system.svc.cluster.local"),
            identity: admin("cp1"),
        },
    ];
    let cm_wanted = [Wanted {
        key: "kubeconfig".into(),
        endpoint: Endpoint::plain("https://cp1.cp1-system.svc.cluster.local"),
        identity: controller_manager(),
    }];
    let lifetime = LIFETIMES.leaf;
    let admin = plan(None, &admin_wanted, &names, &ca, lifetime, now())
        .expect("admin kubeconfig")
        .expect("new");
    let cm = plan(None, &cm_wanted, &names, &ca, lifetime, now())
        .expect("cm kubeconfig")
        .expect("new");
    (admin, cm)
}

fn der_chain(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("PEM certificates")
}

fn der_key(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("a PEM key")
}

/// Who connected, as the server saw the client certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Peer {
    common_name: String,
    organizations: Vec<String>,
}

/// A TLS server with the API server certificate that requires a client certificate from the
/// CA and answers one HTTP request per connection with Kubernetes' /version.
async fn start_server(certs: &SecretData) -> (SocketAddr, Arc<Mutex<Vec<Peer>>>) {
    let mut roots = rustls::RootCertStore::empty();
    for cert in der_chain(text(certs, "ca.crt").expect("ca.crt")) {
        roots.add(cert).expect("CA accepted");
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .expect("client verifier");
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            der_chain(text(certs, "apiserver.crt").expect("apiserver.crt")),
            der_key(text(certs, "apiserver.key").expect("apiserver.key")),
        )
        .expect("server certificate and key belong together");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = peers.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                if let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                    let (_, parsed) =
                        X509Certificate::from_der(cert.as_ref()).expect("client certificate");
                    let attr = |values: Vec<&str>| {
                        values.into_iter().map(str::to_owned).collect::<Vec<_>>()
                    };
                    let peer = Peer {
                        common_name: attr(
                            parsed
                                .subject()
                                .iter_common_name()
                                .filter_map(|a| a.as_str().ok())
                                .collect(),
                        )
                        .join(","),
                        organizations: attr(
                            parsed
                                .subject()
                                .iter_organization()
                                .filter_map(|a| a.as_str().ok())
                                .collect(),
                        ),
                    };
                    seen.lock().expect("lock").push(peer);
                }
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let body = r#"{"major":"1","minor":"34","gitVersion":"v1.34.3","gitCommit":"x","gitTreeState":"clean","buildDate":"2026-01-01T00:00:00Z","goVersion":"go1.25","compiler":"gc","platform":"linux/amd64"}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (address, peers)
}

/// The CA, client certificate and key of a generated kubeconfig.
fn credentials_of(kubeconfig_bytes: &[u8]) -> (String, String, String) {
    let parsed = kubeconfig::parse(kubeconfig_bytes).expect("kube-rs parses it");
    let user = parsed.auth_infos[0].auth_info.clone().expect("a user");
    let decode = |b64: &str| {
        use base64::Engine as _;
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64"),
        )
        .expect("PEM")
    };
    let current = kubeconfig::current(&parsed).expect("current context");
    let key = {
        use secrecy::ExposeSecret as _;
        decode(
            user.client_key_data
                .as_ref()
                .expect("key data")
                .expose_secret(),
        )
    };
    (
        current.ca_pem().expect("CA data"),
        current.client_cert_pem().expect("cert data"),
        key,
    )
}

/// Connects to `address` expecting the server to be `server_name`, with the client
/// certificate; completes the handshake and one request.
async fn handshake(
    address: SocketAddr,
    server_name: &str,
    ca: &str,
    cert: &str,
    key: &str,
) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in der_chain(ca) {
        roots.add(c).map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(der_chain(cert), der_key(key))
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, stream)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(b"GET /version HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    tls.read_to_string(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    response
        .starts_with("HTTP/1.1 200")
        .then_some(())
        .ok_or(response)
}

#[tokio::test]
async fn the_api_server_certificate_serves_every_san_to_clients_of_the_kubeconfigs() {
    crate::within(async move {
        let certs = certs();
        let (admin, cm) = kubeconfigs(&certs);
        let (address, peers) = start_server(&certs).await;
        let (ca, cert, key) = credentials_of(&admin["kubeconfig"]);
        for name in SANS {
            handshake(address, name, &ca, &cert, &key)
                .await
                .unwrap_or_else(|err| panic!("{name}: {err}"));
        }
        // An IP SAN works too; a name that is not on the certificate does not.
        handshake(address, "127.0.0.1", &ca, &cert, &key)
            .await
            .expect("IP SAN");
        let err = handshake(address, "cp2.localtest.me", &ca, &cert, &key)
            .await
            .expect_err("not a SAN");
        assert!(
            err.contains("NotValidForName") || err.contains("not valid for name"),
            "{err}"
        );

        // The server saw who connected.
        let (ca_cm, cert_cm, key_cm) = credentials_of(&cm["kubeconfig"]);
        handshake(address, SANS[1], &ca_cm, &cert_cm, &key_cm)
            .await
            .expect("controller manager");
        let peers = peers.lock().expect("lock").clone();
        assert_eq!(
            peers.first(),
            Some(&Peer {
                common_name: "kubernetes-admin".into(),
                organizations: vec!["system:masters".into()],
            })
        );
        assert_eq!(
            peers.last(),
            Some(&Peer {
                common_name: "system:kube-controller-manager".into(),
                organizations: vec![],
            })
        );
    })
    .await;
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    crate::within(async move {
        let certs = certs();
        let (address, _) = start_server(&certs).await;
        let stranger = Authority::generate("kubernetes", now(), LIFETIMES.authority).expect("CA");
        let issued = stranger
            .issue(
                &kflex::bootstrap::pki::LeafSpec::client("kubernetes-admin", &["system:masters"]),
                now(),
                LIFETIMES.leaf,
            )
            .expect("issued");
        let ca = text(&certs, "ca.crt").expect("ca.crt");
        let result = handshake(address, SANS[0], ca, &issued.cert_pem, &issued.key_pem).await;
        assert!(
            result.is_err(),
            "the server must refuse a stranger's client certificate"
        );
    })
    .await;
}

#[tokio::test]
async fn kube_rs_talks_to_the_server_with_a_generated_kubeconfig() {
    crate::within(async move {
        let certs = certs();
        let (admin, _) = kubeconfigs(&certs);
        let (address, peers) = start_server(&certs).await;
        for (key, server) in [
            ("kubeconfig", "https://cp1.localtest.me:9443/"),
            (
                "kubeconfig-incluster",
                "https://cp1.cp1-system.svc.cluster.local/",
            ),
        ] {
            let parsed = kubeconfig::parse(&admin[key]).expect("kube-rs parses it");
            let mut config = kube::Config::from_custom_kubeconfig(
                parsed,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .expect("a kube-rs configuration");
            assert_eq!(config.cluster_url.to_string(), server, "{key}");
            assert_eq!(config.default_namespace, "default");
            // No DNS here: reach the name on the loopback address, verifying it as the name.
            let host = config.cluster_url.host().expect("a host").to_owned();
            config.tls_server_name = Some(host);
            config.cluster_url = format!("https://{address}").parse().expect("a URL");
            let client = kube::Client::try_from(config).expect("a client");
            let version = client
                .apiserver_version()
                .await
                .expect("a TLS request with the client certificate");
            assert_eq!(version.git_version, "v1.34.3");
        }
        assert!(
            peers
                .lock()
                .expect("lock")
                .iter()
                .all(|p| p.common_name == "kubernetes-admin")
        );
    })
    .await;
}

/// loadBalancer.publishAddress: the off-cluster kubeconfig names the load balancer's address
/// (here the loopback address, which the certificate does not name) and `<cp>.<domain>` as
/// `tls-server-name`. kube-rs uses it as written, and verifies the certificate against the name;
/// without the name the same kubeconfig is refused.
#[tokio::test]
async fn a_kubeconfig_at_the_load_balancer_address_verifies_the_certificate_by_name() {
    crate::within(async move {
        let certs = certs_without_addresses();
        let (address, _) = start_server(&certs).await;
        let ca = certificates::authority(&certs, keys::CA).expect("the CA");
        let names = Names::for_control_plane("cp1");
        let at = |tls_server_name: Option<&str>| {
            let wanted = [Wanted {
                key: "kubeconfig".into(),
                endpoint: kflex::bootstrap::address::endpoint(
                    &format!("https://cp1.localtest.me:{}", address.port()),
                    Some(&address.ip().to_string()),
                )
                .map(|endpoint| Endpoint {
                    tls_server_name: tls_server_name.map(str::to_owned),
                    ..endpoint
                })
                .expect("an endpoint"),
                identity: admin("cp1"),
            }];
            plan(None, &wanted, &names, &ca, LIFETIMES.leaf, now())
                .expect("planned")
                .expect("new data")
        };
        let client_for = |data: &SecretData| {
            let parsed = kubeconfig::parse(&data["kubeconfig"]).expect("kube-rs parses it");
            async move {
                let config = kube::Config::from_custom_kubeconfig(
                    parsed,
                    &kube::config::KubeConfigOptions::default(),
                )
                .await
                .expect("a kube-rs configuration");
                kube::Client::try_from(config).expect("a client")
            }
        };
        let published = at(Some("cp1.localtest.me"));
        let client = client_for(&published).await;
        let version = client
            .apiserver_version()
            .await
            .expect("TLS to the address, the certificate verified as cp1.localtest.me");
        assert_eq!(version.git_version, "v1.34.3");
        let without_name = at(None);
        let client = client_for(&without_name).await;
        assert!(
            client.apiserver_version().await.is_err(),
            "the certificate does not name the address"
        );
    })
    .await;
}

fn key_ids(cert_pem: &str) -> (Option<Vec<u8>>, Option<Vec<u8>>, Vec<u8>) {
    let der = pem_to_der(cert_pem).expect("PEM");
    let (_, cert) = X509Certificate::from_der(&der).expect("parses");
    let mut subject = None;
    let mut authority = None;
    for ext in cert.iter_extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => subject = Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority = aki.key_identifier.as_ref().map(|id| id.0.to_vec());
            }
            _ => {}
        }
    }
    (subject, authority, cert.raw_serial().to_vec())
}

#[test]
fn serials_are_unique_and_key_identifiers_chain() {
    let certs = certs();
    let (admin, cm) = kubeconfigs(&certs);
    let mut pems: Vec<(String, String)> = [
        "ca.crt",
        "front-proxy-ca.crt",
        "apiserver.crt",
        "apiserver-kubelet-client.crt",
        "front-proxy-client.crt",
    ]
    .iter()
    .map(|k| {
        (
            (*k).to_owned(),
            text(&certs, k).expect("present").to_owned(),
        )
    })
    .collect();
    for (name, data) in [
        ("admin", &admin["kubeconfig"]),
        ("admin-incluster", &admin["kubeconfig-incluster"]),
        ("cm", &cm["kubeconfig"]),
    ] {
        pems.push((name.to_owned(), credentials_of(data).1));
    }
    let mut serials = std::collections::BTreeSet::new();
    for (name, pem) in &pems {
        let (_, _, serial) = key_ids(pem);
        assert!(serial.len() >= 16, "{name}: a random serial");
        assert!(serials.insert(serial), "{name}: serial repeated");
    }
    let (ca_ski, _, _) = key_ids(text(&certs, "ca.crt").expect("ca"));
    let (front_proxy_ski, _, _) = key_ids(text(&certs, "front-proxy-ca.crt").expect("fp ca"));
    assert!(ca_ski.is_some() && front_proxy_ski.is_some());
    assert_ne!(ca_ski, front_proxy_ski, "two CAs");
    for (name, pem) in &pems {
        let (ski, aki, _) = key_ids(pem);
        assert!(ski.is_some(), "{name}: a subject key identifier");
        if name.ends_with("ca.crt") {
            continue;
        }
        let expected = if name == "front-proxy-client.crt" {
            &front_proxy_ski
        } else {
            &ca_ski
        };
        assert_eq!(
            &aki, expected,
            "{name}: its authority key identifier is its CA's"
        );
    }
}

#[test]
fn renewal_replaces_leaves_and_keeps_the_ca() {
    let first = certs();
    let names = ApiServerNames {
        dns_names: SANS.iter().map(|s| (*s).to_owned()).collect(),
        ip_addresses: vec![IpAddr::from([127, 0, 0, 1])],
    };
    let later = now() + time::Duration::days(250);
    let renewed = k8s_certs(Some(&first), &names, LIFETIMES, later)
        .expect("renewal")
        .expect("changed");
    assert_eq!(renewed["ca.crt"], first["ca.crt"]);
    assert_eq!(renewed["ca.key"], first["ca.key"]);
    assert_ne!(renewed["apiserver.crt"], first["apiserver.crt"]);
    let facts = leaf_facts(text(&renewed, "apiserver.crt").expect("cert")).expect("facts");
    assert!(facts.not_after > later.unix_timestamp() + 300 * 86_400);
    let ca = certificates::authority(&renewed, keys::CA).expect("CA");
    assert!(ca.issued(text(&renewed, "apiserver.crt").expect("cert")));
}
