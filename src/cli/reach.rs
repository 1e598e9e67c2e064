//! Whether a command can talk to the cluster of a kubeconfig context, and when it cannot, why,
//! in one line a person understands: the server, and connection refused, a TLS verification
//! failure (which name, which CA), something that is not a Kubernetes API, or no answer. The
//! libraries' own messages nest four deep ("client error (Connect)", "tcp connect error", …);
//! this module reads the chain and names the cause instead. It only reads: no write, no retry.

use std::error::Error as StdError;
use std::time::Duration;

/// How long a person waits for the first answer of an API server before being told it gave none.
pub(crate) const FIRST_ANSWER: Duration = Duration::from_secs(10);

/// The cluster of a context, as the kubeconfig describes it (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Server {
    /// The API server's URL.
    pub url: String,
    /// The kubeconfig context.
    pub context: String,
    /// Which CA the server's certificate is checked against, e.g. "the certificate-authority-data
    /// of cluster kind-kubeflex in /root/.kube/config".
    pub ca: String,
}

/// A cluster a command cannot use, said in one line (no library chain under it).
#[derive(Debug, thiserror::Error)]
#[error("cannot use the Kubernetes API server {} (context {:?}): {reason}", server.url, server.context)]
pub(crate) struct Unreachable {
    pub server: Server,
    pub reason: String,
}

/// Asks the API server for its version (a request every Kubernetes API server answers, even
/// without credentials): `Ok` once it answered as a Kubernetes API, else why not.
pub(crate) async fn check(client: &kube::Client, server: &Server) -> Result<(), Unreachable> {
    let unreachable = |reason: String| Unreachable {
        server: server.clone(),
        reason,
    };
    match tokio::time::timeout(FIRST_ANSWER, client.apiserver_version()).await {
        Err(_) => Err(unreachable(format!(
            "no answer within {}s (a firewall, a wrong port, or a server that is not up)",
            FIRST_ANSWER.as_secs()
        ))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => match explain(&err, &server.ca) {
            Explained::Answered => Ok(()),
            Explained::Failed(reason) => Err(unreachable(reason)),
        },
    }
}

/// What an error from an API call says about the server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Explained {
    /// A Kubernetes API answered (with an error of its own, such as 403, which the command
    /// reports where it happens).
    Answered,
    /// The server could not be used; why, in a few words.
    Failed(String),
}

/// Reads the error chain of an API call. `ca` names the CA the kubeconfig trusts.
pub(crate) fn explain(err: &kube::Error, ca: &str) -> Explained {
    if let kube::Error::Api(status) = err {
        return match status.code {
            401 => Explained::Failed(
                "401 Unauthorized: the server refused the context's credentials (expired or \
                 wrong token or client certificate)"
                    .to_owned(),
            ),
            // A Kubernetes API answers with a JSON Status; kube makes one up for any other body.
            code if status.reason == "Failed to parse error data" => Explained::Failed(format!(
                "it answered {code} without a Kubernetes Status: not a Kubernetes API server (a \
                 wrong port or URL, or a proxy in between?)"
            )),
            _ => Explained::Answered,
        };
    }
    Explained::Failed(cause(err, ca))
}

/// An API call's error in one line: the API's own answer (`404 NotFound: …`), else its cause.
pub(crate) fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if status.reason == "Failed to parse error data" => format!(
            "the server answered {} without a Kubernetes Status: not a Kubernetes API server",
            status.code
        ),
        kube::Error::Api(status) => {
            format!("{} {}: {}", status.code, status.reason, status.message)
        }
        other => cause(other, "the kubeconfig's CA"),
    }
}

/// Whether the API answered that a resource type does not exist (404 with a Kubernetes Status):
/// for ControlPlanes and PostCreateHooks, kflex's CRDs are not installed.
pub(crate) fn is_missing_api(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404 && status.reason == "NotFound")
}

/// `err` of an API call on kflex's own resources (`what`: "listing ControlPlanes …"), with the
/// hint that kflex is not installed only when the API answered that their type does not exist.
pub(crate) fn on_kflex_api(err: kube::Error, what: String) -> anyhow::Error {
    if is_missing_api(&err) {
        anyhow::anyhow!(
            "{what}: the cluster has no such resource type (its CRD is missing); is kflex \
             installed? (`kflex init`)"
        )
    } else {
        anyhow::Error::new(err).context(what)
    }
}

/// The innermost cause that says something to a person, in a few words.
pub(crate) fn cause(err: &(dyn StdError + 'static), ca: &str) -> String {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    let mut deepest = err.to_string();
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return tls_reason(tls, ca);
        }
        let mut next = error.source();
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            // An io::Error's source() skips the error it wraps (which may be another io::Error
            // around rustls's): follow the wrapped one instead.
            if let Some(inner) = io.get_ref() {
                next = Some(inner as &(dyn StdError + 'static));
            }
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return "connection refused (nothing listens there: is the cluster running, \
                            and is this its address?)"
                        .to_owned();
                }
                std::io::ErrorKind::TimedOut => {
                    return "no answer in time (a firewall, a wrong address, or a server that \
                            is not up)"
                        .to_owned();
                }
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof => {
                    return "the server closed the connection (is this a Kubernetes API, and \
                            does it speak TLS?)"
                        .to_owned();
                }
                _ => {}
            }
        }
        deepest = error.to_string();
        current = next;
    }
    deepest
}

fn tls_reason(err: &rustls::Error, ca: &str) -> String {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(C::NotValidForNameContext {
            expected,
            presented,
        }) => {
            let names = if presented.is_empty() {
                "no name at all".to_owned()
            } else {
                presented.join(", ")
            };
            format!(
                "TLS: the server's certificate is not valid for {expected:?}: it names {names} \
                 (a wrong address, or set tls-server-name in the kubeconfig)",
                expected = server_name(expected)
            )
        }
        rustls::Error::InvalidCertificate(C::NotValidForName) => {
            "TLS: the server's certificate is not valid for the server's name (a wrong \
             address, or set tls-server-name in the kubeconfig)"
                .to_owned()
        }
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => format!(
            "TLS: the server's certificate is not signed by {ca} (a certificate-authority of \
             another cluster, or another server?)"
        ),
        // A CA of the same name but another key (two clusters' CAs both called "kubernetes").
        rustls::Error::InvalidCertificate(C::BadSignature) => format!(
            "TLS: the server's certificate is not signed by {ca} (its issuer has the same name \
             but another key: another cluster's CA?)"
        ),
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => "TLS: the server's certificate is expired or not yet valid (or this machine's \
              clock is wrong)"
            .to_owned(),
        rustls::Error::InvalidCertificate(other) => {
            format!("TLS: the server's certificate is refused: {other:?}")
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "TLS: the server does not speak TLS (an http:// server, or another protocol?)"
                .to_owned()
        }
        other => format!("TLS: {other}"),
    }
}

fn server_name(name: &rustls::pki_types::ServerName<'_>) -> String {
    match name {
        rustls::pki_types::ServerName::DnsName(dns) => dns.as_ref().to_owned(),
        rustls::pki_types::ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parsed_status_means_a_kubernetes_api_answered() {
        let status = |code: u16, reason: &str| {
            kube::Error::Api(
                kube::core::Status::failure("x", reason)
                    .with_code(code)
                    .boxed(),
            )
        };
        assert_eq!(
            explain(&status(403, "Forbidden"), "ca"),
            Explained::Answered
        );
        assert_eq!(explain(&status(404, "NotFound"), "ca"), Explained::Answered);
        let Explained::Failed(reason) = explain(&status(404, "Failed to parse error data"), "ca")
        else {
            panic!("a 404 page is not a Kubernetes API");
        };
        assert!(reason.contains("not a Kubernetes API server"), "{reason}");
        let Explained::Failed(reason) = explain(&status(401, "Unauthorized"), "ca") else {
            panic!("refused credentials are a failure");
        };
        assert!(reason.starts_with("401 Unauthorized"), "{reason}");
    }

    #[test]
    fn tls_failures_name_the_name_and_the_ca() {
        let wrong_name =
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("cp1.example").unwrap(),
                presented: vec!["DNS name \"other.example\"".to_owned()],
            });
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, wrong_name);
        let reason = cause(&io, "the CA of cluster x");
        assert!(
            reason.contains("not valid for \"cp1.example\"") && reason.contains("other.example"),
            "{reason}"
        );
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, unknown);
        assert_eq!(
            cause(&io, "the CA of cluster x"),
            "TLS: the server's certificate is not signed by the CA of cluster x (a \
             certificate-authority of another cluster, or another server?)"
        );
    }
}
