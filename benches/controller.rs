//! The `kflex controller` process with 100 ControlPlanes: its resident memory once every control
//! plane is synced (target: under 30 MiB), and the writes it sends during resyncs of unchanged
//! control planes (target: none). The API server is kflex-testkit's fake, served over HTTP in this
//! process; the controller is the release binary, reaching it through a kubeconfig.
//!
//! `cargo bench --bench controller` prints the numbers and whether the targets are met.

#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its numbers on stdout"
)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kflex_testkit::FakeApi;
use serde_json::json;

const CONTROL_PLANES: usize = 100;
const TARGET_RSS_KIB: u64 = 30 * 1024;
const GROUP: &str = "tenancy.kflex.kubestellar.org";
/// The controller's resync period here: short, so the steady state is observed within the run.
const RESYNC_SECONDS: u64 = 5;

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn synced(fake: &FakeApi, name: &str) -> bool {
    fake.get(GROUP, "controlplanes", None, name)
        .and_then(|cp| {
            cp["status"]["conditions"].as_array().map(|c| {
                c.iter()
                    .any(|c| c["type"] == "Synced" && c["status"] == "True")
            })
        })
        .unwrap_or(false)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let fake = FakeApi::new();
        // Installed as `kflex init` does: without its configuration the controller renders nothing.
        fake.put(
            "",
            "configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "kubeflex-config", "namespace": "kubeflex-system"},
                   "data": {}}),
        );
        let types = ["k8s", "k3s", "vcluster", "host"];
        for i in 0..CONTROL_PLANES {
            // One host control plane at most; the rest cycle through the types that run a workload.
            let type_ = if i == 0 { "host" } else { types[i % 3] };
            fake.put(
                GROUP,
                "controlplanes",
                json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "ControlPlane",
                       "metadata": {"name": format!("cp{i}")}, "spec": {"type": type_}}),
            );
        }
        let address = fake.serve_http().await.expect("the fake serves");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, FakeApi::kubeconfig(address)).expect("written");
        let child = Command::new(env!("CARGO_BIN_EXE_kflex"))
            .args([
                "controller",
                "--metrics-bind-address=127.0.0.1:0",
                "--health-probe-bind-address=127.0.0.1:0",
                &format!("--resync={RESYNC_SECONDS}s"),
            ])
            .env_clear()
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kflex controller starts");
        let controller = Killed(child);
        let pid = controller.0.id();

        let started = Instant::now();
        let names: Vec<String> = (0..CONTROL_PLANES).map(|i| format!("cp{i}")).collect();
        while !names.iter().all(|n| synced(&fake, n)) {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "not every ControlPlane synced in 2 minutes"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let synced_after = started.elapsed();
        // Not Ready (no pods run here), so each is looked at again every 15 s; resyncs of the
        // Ready-independent kind come every RESYNC_SECONDS. Watch two full rounds.
        tokio::time::sleep(Duration::from_secs(3)).await;
        fake.clear_log();
        tokio::time::sleep(Duration::from_secs(2 * 15 + 1)).await;
        let writes = fake.writes();
        let reads = fake.log().len() - writes.len();
        let rss = status_kib(pid, "VmRSS:");
        let peak = status_kib(pid, "VmHWM:");
        println!("kflex controller with {CONTROL_PLANES} ControlPlanes (fake API over HTTP):");
        println!("  all synced after {:.1} s", synced_after.as_secs_f64());
        println!(
            "  resident memory: {:.1} MiB (peak {:.1} MiB)",
            rss as f64 / 1024.0,
            peak as f64 / 1024.0
        );
        println!(
            "  over 31 s of resyncs: {} writes, {reads} reads",
            writes.len()
        );
        for write in writes.iter().take(10) {
            println!("    write: {write}");
        }
        let met = |ok: bool| if ok { "met" } else { "MISSED" };
        println!(
            "target resident memory < 30 MiB: {}",
            met(rss < TARGET_RSS_KIB)
        );
        println!(
            "target 0 writes per resync of unchanged control planes: {}",
            met(writes.is_empty())
        );
    });
}
