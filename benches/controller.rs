//! The `kflex controller` process with a fleet of ControlPlanes created at once (1,000 and
//! 10,000; issue 14, "The controller at scale"). The API server is kflex-testkit's fake, served
//! over HTTP in this process; it logs every request, so the figures are counts that come out the
//! same on any machine. The controller is the release binary in a process of its own (its
//! resident memory is its own), reaching the fake through a kubeconfig; its reconciles are read
//! from its `/metrics`.
//!
//! For each fleet it prints, each with met or MISSED:
//! - reconciles per control plane while the fleet is created (target: at most 2). The fourteen
//!   watch events of a control plane's own applies, and its finalizer write, arrive while its
//!   first pass runs: this is where events arriving during a pass must fold into one more pass
//!   (one pass each would be fifteen or more). `tests/controller.rs` shows the same for one
//!   control plane whose pass is held by a slow API;
//! - API requests per control plane while it is created (target: at most the objects it renders
//!   plus [`REQUEST_ALLOWANCE`]);
//! - after a restart with everything in place, reconciles (at most 1) and writes (none) per
//!   control plane;
//! - the controller's peak resident memory (VmHWM; at most 64 MiB at 1,000, 256 MiB at 10,000);
//! - a burst of [`EDITS`] edits of each control plane's Deployment, 200 ms apart: at most 2
//!   reconciles per control plane, not one an edit.
//!
//! While the fleet is created the benchmark does what a cluster's controllers do to the objects
//! kflex applies: it writes the status of every Deployment and Job, and a Deployment's revision
//! annotation — events the controller must not take for changes (on a real cluster, reacting to
//! them cost twenty reconciles per control plane).
//!
//! The control planes are never Ready here (no pods run), and the controller polls a not-Ready
//! control plane's readiness every 15 s by default; the benchmark sets that poll to an hour so
//! that every reconcile it counts was caused by an event.
//!
//! `cargo bench --bench controller` runs both fleets; `KFLEX_BENCH_FLEETS=1000` picks some.

#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its numbers on stdout"
)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kflex_core::api::ControlPlane;
use kflex_core::render::{HookCatalog, Renderer, TemplateSet};
use kflex_core::settings::Settings;
use kflex_testkit::FakeApi;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const GROUP: &str = "tenancy.kflex.kubestellar.org";
/// What a control plane's creation may cost beyond one apply per object: reading the
/// ControlPlane (once a pass, two passes), writing its finalizer and ApplySet metadata, reading
/// its Deployment for readiness (once a pass), writing its status, and the Events of Synced and
/// Ready appearing.
const REQUEST_ALLOWANCE: f64 = 8.0;
const MAX_RECONCILES_CREATING: f64 = 2.0;
const MAX_RECONCILES_FOLDING: f64 = 2.0;
/// Edits of each control plane's Deployment while the fleet's passes run.
const EDITS: usize = 5;

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// A workload of control plane `cp0` as rendered: (group, plural, namespace, name), with `cp0`
/// standing for the control plane's name.
type Workload = (&'static str, &'static str, String, String);

/// The Deployments and Jobs a k8s control plane renders (named for `cp0`).
fn workloads(manifests: &[kflex_core::manifest::Manifest]) -> Vec<Workload> {
    manifests
        .iter()
        .filter_map(|m| {
            let (group, plural) = match m.kind() {
                "Deployment" => ("apps", "deployments"),
                "Job" => ("batch", "jobs"),
                _ => return None,
            };
            Some((
                group,
                plural,
                m.namespace().unwrap_or_default().to_owned(),
                m.name().to_owned(),
            ))
        })
        .collect()
}

/// What kube-controller-manager does to new Deployments and Jobs, every half second until
/// `stop`: status, and a Deployment's revision annotation (the Deployment in two writes, as the
/// deployment controller does). Looks objects up by name, control plane by control plane, so
/// that the rounds cost what is new, not the whole fleet.
fn cluster_controllers(
    fake: FakeApi,
    count: usize,
    workloads: Vec<Workload>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut writes = 0;
        let mut waiting: Vec<(usize, &Workload)> = (0..count)
            .flat_map(|i| workloads.iter().map(move |w| (i, w)))
            .collect();
        while !stop.load(Ordering::SeqCst) && !waiting.is_empty() {
            waiting.retain(|(i, (group, plural, namespace, name))| {
                let cp = format!("cp{i}");
                let namespace = namespace.replace("cp0", &cp);
                let name = name.replace("cp0", &cp);
                let Some(object) = fake.get(group, plural, Some(&namespace), &name) else {
                    return true;
                };
                let patches = if *plural == "deployments" {
                    let generation = object["metadata"]["generation"].clone();
                    vec![
                        json!({"metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}},
                               "status": {"observedGeneration": generation}}),
                        json!({"status": {"replicas": 1, "unavailableReplicas": 1,
                                          "conditions": [{"type": "Available", "status": "False"}]}}),
                    ]
                } else {
                    vec![json!({"status": {"active": 1}})]
                };
                for patch in patches {
                    fake.edit(group, plural, Some(&namespace), &name, &patch);
                    writes += 1;
                }
                false
            });
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        writes
    })
}

/// How many ControlPlanes say Synced=True.
fn synced(fake: &FakeApi) -> usize {
    fake.objects(GROUP, "controlplanes")
        .iter()
        .filter(|cp| {
            cp["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Synced" && c["status"] == "True")
            })
        })
        .count()
}

fn control_plane(i: usize) -> Value {
    json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "ControlPlane",
           "metadata": {"name": format!("cp{i}")}, "spec": {"type": "k8s"}})
}

/// What a k8s control plane `cp0` renders (what the controller applies for it).
fn rendered() -> Vec<kflex_core::manifest::Manifest> {
    let cp: ControlPlane = serde_json::from_value(control_plane(0)).expect("a ControlPlane");
    Renderer::new(Settings::default(), &TemplateSet::embedded())
        .expect("the templates compile")
        .render(&cp, &HookCatalog::default())
        .expect("renders")
        .manifests
}

/// The controller process; killed when dropped.
struct Controller {
    child: Child,
    metrics: std::net::SocketAddr,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

impl Controller {
    fn start(kubeconfig: &std::path::Path) -> Self {
        let metrics = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_kflex"))
            .args([
                "controller",
                &format!("--metrics-bind-address={metrics}"),
                &format!("--health-probe-bind-address={}", free_port()),
                "--resync=1h",
                "--not-ready-requeue=1h",
            ])
            .env_clear()
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kflex controller starts");
        Self { child, metrics }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn scrape(&self) -> Option<String> {
        let mut stream = tokio::net::TcpStream::connect(self.metrics).await.ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await.ok()?;
        Some(text)
    }

    /// A metric's value, summed over its labels.
    async fn metric(&self, name: &str) -> f64 {
        let text = self.scrape().await.unwrap_or_default();
        text.lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn reconciles(&self) -> f64 {
        self.metric("kflex_reconciles_total").await
    }

    /// Waits until the controller watches everything it watches (the fake saw `watches`
    /// distinct watch requests).
    async fn wait_watching(&self, fake: &FakeApi, watches: usize) {
        let started = Instant::now();
        loop {
            let mut paths: Vec<String> = fake
                .log()
                .into_iter()
                .filter(|r| r.query.contains("watch=true"))
                .map(|r| r.path)
                .collect();
            paths.sort();
            paths.dedup();
            if paths.len() >= watches && self.scrape().await.is_some() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the controller did not start watching within a minute ({paths:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until at least `at_least` reconciles were counted, none is waiting, and none more
    /// came for two seconds; the count.
    async fn wait_quiet(&self, at_least: f64) -> f64 {
        let started = Instant::now();
        let mut last = -1.0;
        let mut since = Instant::now();
        loop {
            let now = self.reconciles().await;
            let waiting = self.metric("kflex_reconcile_queue_depth").await;
            if now != last || waiting > 0.0 || now < at_least {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= Duration::from_secs(2) {
                return now;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "the controller did not settle within 10 minutes ({now} reconciles)"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Requests other than watches (which stay open), and of those the writes.
fn requests(fake: &FakeApi) -> (usize, usize) {
    let log = fake.log();
    let calls = log.iter().filter(|r| !r.query.contains("watch=true"));
    let (mut all, mut writes) = (0, 0);
    for call in calls {
        all += 1;
        writes += usize::from(call.is_write());
    }
    (all, writes)
}

async fn fleet(count: usize, manifests: &[kflex_core::manifest::Manifest]) {
    let objects = manifests.len();
    let target_rss_mib = if count <= 1000 { 64.0 } else { 256.0 };
    let fake = FakeApi::new();
    // Installed as `kflex init` does: without its configuration the controller renders nothing.
    fake.put_kflex_config(json!({}));
    let address = fake.serve_http().await.expect("the fake serves");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, FakeApi::kubeconfig(address)).expect("written");
    let n = count as f64;
    println!("{count} k8s ControlPlanes created at once ({objects} objects each):");

    // Creation: the controller is up and idle, then the whole fleet appears.
    let controller = Controller::start(&kubeconfig);
    // ControlPlanes, PostCreateHooks, the configuration and 15 kinds of members.
    let watches = 18;
    controller.wait_watching(&fake, watches).await;
    fake.clear_log();
    let stop = Arc::new(AtomicBool::new(false));
    let churn = cluster_controllers(fake.clone(), count, workloads(manifests), stop.clone());
    let started = Instant::now();
    for i in 0..count {
        fake.put(GROUP, "controlplanes", control_plane(i));
    }
    while synced(&fake) < count {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "not every ControlPlane synced in 15 minutes"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let synced_after = started.elapsed();
    // The cluster's controllers have seen every workload once the controller is quiet.
    controller.wait_quiet(n).await;
    stop.store(true, Ordering::SeqCst);
    let churned = churn.await.unwrap_or_default();
    let reconciles = controller.wait_quiet(n).await / n;
    // The benchmark's own status writes go around the HTTP server: not in the log.
    let (calls, _) = requests(&fake);
    let per_cp = calls as f64 / n;
    let peak_creating = status_kib(controller.pid(), "VmHWM:") as f64 / 1024.0;
    println!(
        "  all Synced after {:.1} s; settled after {:.1} s; {churned} status writes by the \
         \"cluster's controllers\"",
        synced_after.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "  reconciles per control plane on creation: {reconciles:.2} (target at most \
         {MAX_RECONCILES_CREATING}): {}",
        verdict(reconciles <= MAX_RECONCILES_CREATING)
    );
    println!(
        "  API requests per control plane on creation: {per_cp:.2} (target at most {objects} \
         objects + {REQUEST_ALLOWANCE}): {}",
        verdict(per_cp <= objects as f64 + REQUEST_ALLOWANCE)
    );

    // A burst: EDITS edits of every control plane's Deployment (an annotation kflex does not
    // render: a pass reads the object and writes nothing), 200 ms apart.
    let before = controller.reconciles().await;
    let edited = Instant::now();
    for round in 0..EDITS {
        for i in 0..count {
            fake.edit(
                "apps",
                "deployments",
                Some(&format!("cp{i}-system")),
                "kube-apiserver",
                &json!({"metadata": {"annotations": {"example.com/touched": round.to_string()}}}),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let edits_took = edited.elapsed();
    let folded = (controller.wait_quiet(before + n).await - before) / n;
    println!(
        "  a burst of {EDITS} edits of each control plane's Deployment over {:.1} s: \
         {folded:.2} reconciles per control plane (target at most {MAX_RECONCILES_FOLDING}): {}",
        edits_took.as_secs_f64(),
        verdict(folded <= MAX_RECONCILES_FOLDING)
    );
    let peak_before_restart = status_kib(controller.pid(), "VmHWM:") as f64 / 1024.0;
    drop(controller);

    // A restart with everything in place.
    fake.clear_log();
    let restarted = Controller::start(&kubeconfig);
    let started = Instant::now();
    let reconciles = restarted.wait_quiet(n).await / n;
    let (_, writes) = requests(&fake);
    let writes = writes as f64 / n;
    let peak_restart = status_kib(restarted.pid(), "VmHWM:") as f64 / 1024.0;
    println!(
        "  restart with everything in place: settled after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "  reconciles per control plane at a restart: {reconciles:.2} (target at most 1): {}",
        verdict(reconciles <= 1.0)
    );
    println!(
        "  writes per control plane at a restart: {writes:.2} (target 0): {}",
        verdict(writes == 0.0)
    );
    let peak = peak_before_restart.max(peak_restart);
    println!(
        "  controller peak resident memory: {peak:.1} MiB (creating {peak_creating:.1}, after \
         the edits {peak_before_restart:.1}, restarted {peak_restart:.1}; target at most \
         {target_rss_mib} MiB): {}",
        verdict(peak <= target_rss_mib)
    );
}

fn main() {
    let fleets: Vec<usize> = std::env::var("KFLEX_BENCH_FLEETS")
        .unwrap_or_else(|_| "1000,10000".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let manifests = rendered();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    for count in fleets {
        runtime.block_on(fleet(count, &manifests));
    }
}
