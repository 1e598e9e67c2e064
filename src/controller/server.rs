//! The controller's HTTP endpoints — `/healthz`, `/readyz` and `/metrics` — on a plain
//! HTTP/1.1 listener: a GET of a known path gets an answer, anything else a 404.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::metrics::Metrics;

/// What the endpoints report.
#[derive(Debug, Default)]
pub struct Health {
    /// Set once the process serves (leader or not) and cleared when it stops; `/readyz`
    /// answers 503 otherwise. Leadership is not readiness: a follower that waited for the
    /// Lease before being Ready would stall every rolling update.
    pub ready: AtomicBool,
}

/// Which paths a listener serves.
#[derive(Clone, Copy, Debug)]
pub enum Endpoints {
    Probes,
    Metrics,
}

/// Binds `address` and serves `endpoints` until the task is dropped.
pub async fn serve(
    address: SocketAddr,
    endpoints: Endpoints,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address}"))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let health = health.clone();
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let _ = answer(stream, endpoints, &health, &metrics).await;
            });
        }
    }))
}

async fn answer(
    mut stream: TcpStream,
    endpoints: Endpoints,
    health: &Health,
    metrics: &Metrics,
) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..n]);
    }
    let line = String::from_utf8_lossy(&request);
    let target = line.split_whitespace().take(2).collect::<Vec<_>>();
    let (code, content_type, body) = match (endpoints, target.as_slice()) {
        (Endpoints::Probes, ["GET", "/healthz"]) => (200, "text/plain", "ok".to_owned()),
        (Endpoints::Probes, ["GET", "/readyz"]) if health.ready.load(Ordering::SeqCst) => {
            (200, "text/plain", "ok".to_owned())
        }
        (Endpoints::Probes, ["GET", "/readyz"]) => (503, "text/plain", "starting".to_owned()),
        (Endpoints::Metrics, ["GET", "/metrics"]) => (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        _ => (404, "text/plain", "not found".to_owned()),
    };
    let reason = match code {
        200 => "OK",
        503 => "Service Unavailable",
        _ => "Not Found",
    };
    let response = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(address: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    /// A hang fails this test instead of stalling the run.
    async fn within<T>(test: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(std::time::Duration::from_secs(60), test)
            .await
            .expect("the test finished within a minute")
    }

    #[tokio::test]
    async fn probes_and_metrics_answer() {
        within(async move {
            let health = Arc::new(Health::default());
            let metrics = Arc::new(Metrics::default());
            metrics.count_reconcile("ok");
            metrics.reconcile_seconds.observe(0.25);
            // Woken three times, two ControlPlanes; one has started.
            metrics.woken(["cp1", "cp2", "cp1"]);
            metrics.woken(["cp3"]);
            metrics.dequeued("cp3");
            let free = |a: &str| -> SocketAddr { a.parse().unwrap() };
            let probes = TcpListener::bind(free("127.0.0.1:0"))
                .await
                .unwrap()
                .local_addr()
                .unwrap();
            let _p = serve(probes, Endpoints::Probes, health.clone(), metrics.clone())
                .await
                .unwrap();
            let scraped = TcpListener::bind(free("127.0.0.1:0"))
                .await
                .unwrap()
                .local_addr()
                .unwrap();
            let _m = serve(scraped, Endpoints::Metrics, health.clone(), metrics.clone())
                .await
                .unwrap();
            assert!(get(probes, "/healthz").await.starts_with("HTTP/1.1 200"));
            assert!(get(probes, "/readyz").await.starts_with("HTTP/1.1 503"));
            health.ready.store(true, Ordering::SeqCst);
            assert!(get(probes, "/readyz").await.starts_with("HTTP/1.1 200"));
            let text = get(scraped, "/metrics").await;
            assert!(
                text.contains("kflex_reconciles_total{result=\"ok\"} 1")
                    && text.contains("kflex_reconcile_duration_seconds_count 1")
                    && text.contains("kflex_reconcile_queue_depth 2"),
                "{text}"
            );
            assert!(get(probes, "/metrics").await.starts_with("HTTP/1.1 404"));
        })
        .await;
    }
}
