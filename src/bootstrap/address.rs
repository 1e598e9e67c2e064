//! Where an off-cluster kubeconfig points under exposure loadBalancer with
//! `loadBalancer.publishAddress` (clusters without external-dns, where `<cp>.<domain>` resolves
//! nowhere): the load balancer's address as the server, and `<cp>.<domain>` as the name the
//! server's certificate is checked against (`tls-server-name`, which kubectl, client-go and
//! kube-rs honour). The certificate already names `<cp>.<domain>`, so nothing is issued again
//! and the address may change without touching a certificate. Until the Service has an address
//! the kubeconfig names `<cp>.<domain>` as usual.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Service;
use kube::Api;

/// An API server endpoint as a kubeconfig's cluster entry holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub server: String,
    /// The name the server's certificate must carry, when the server URL does not name it.
    pub tls_server_name: Option<String>,
}

impl Endpoint {
    /// `server` as it is, with no separate certificate name.
    pub fn plain(server: &str) -> Self {
        Self {
            server: server.to_owned(),
            tls_server_name: None,
        }
    }
}

/// The first address a load balancer was given (`status.loadBalancer.ingress`): its IP, else its
/// host name (some clouds give only one).
pub fn address_of(service: &Service) -> Option<String> {
    let ingress = service
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?;
    ingress.iter().find_map(|point| {
        point
            .ip
            .clone()
            .filter(|ip| !ip.is_empty())
            .or_else(|| point.hostname.clone().filter(|host| !host.is_empty()))
    })
}

/// The endpoint for `host_server` (`https://<cp>.<domain>:<port>`) once the load balancer has
/// `address`: the same scheme and port at the address, the host kept as the certificate name.
/// Without an address, `host_server` itself.
pub fn endpoint(host_server: &str, address: Option<&str>) -> anyhow::Result<Endpoint> {
    let Some(address) = address else {
        return Ok(Endpoint::plain(host_server));
    };
    let (scheme, rest) = host_server.split_once("://").with_context(|| {
        format!("{host_server:?} is not a URL like https://cp1.example.com:443")
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !port.is_empty() => {
            (host, Some(port))
        }
        _ => (authority, None),
    };
    if host.is_empty() || host.starts_with('[') {
        anyhow::bail!("{host_server:?} does not name a host by DNS name");
    }
    // An IPv6 address goes in brackets in a URL.
    let shown = if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_owned()
    };
    let server = match port {
        Some(port) => format!("{scheme}://{shown}:{port}"),
        None => format!("{scheme}://{shown}"),
    };
    Ok(Endpoint {
        server,
        tls_server_name: Some(host.to_owned()),
    })
}

/// The address of load balancer Service `name` in `namespace`; `None` while it has none (or the
/// Service is missing: it is applied with the rest of the control plane).
pub async fn read(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Option<String>> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let service = services
        .get_opt(name)
        .await
        .with_context(|| format!("reading Service {namespace}/{name}"))?;
    Ok(service.as_ref().and_then(address_of))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(ingress: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "k3s"},
            "status": {"loadBalancer": {"ingress": ingress}}
        }))
        .unwrap()
    }

    #[test]
    fn the_address_is_the_first_ip_else_host_name() {
        assert_eq!(
            address_of(&service(serde_json::json!([{"ip": "203.0.113.7"}]))).as_deref(),
            Some("203.0.113.7")
        );
        assert_eq!(
            address_of(&service(
                serde_json::json!([{"hostname": "a1b2.elb.amazonaws.com"}])
            ))
            .as_deref(),
            Some("a1b2.elb.amazonaws.com")
        );
        assert_eq!(address_of(&service(serde_json::json!([]))), None);
        assert_eq!(address_of(&Service::default()), None);
    }

    #[test]
    fn the_endpoint_keeps_scheme_port_and_the_host_as_certificate_name() {
        let host = "https://edge.example.com:9443";
        assert_eq!(endpoint(host, None).unwrap(), Endpoint::plain(host));
        assert_eq!(
            endpoint(host, Some("203.0.113.7")).unwrap(),
            Endpoint {
                server: "https://203.0.113.7:9443".into(),
                tls_server_name: Some("edge.example.com".into()),
            }
        );
        assert_eq!(
            endpoint(host, Some("2001:db8::7")).unwrap().server,
            "https://[2001:db8::7]:9443"
        );
        assert_eq!(
            endpoint("https://edge.example.com", Some("lb.example.net"))
                .unwrap()
                .server,
            "https://lb.example.net"
        );
        assert!(endpoint("edge.example.com:9443", Some("203.0.113.7")).is_err());
    }
}
