//! Rendering in one process, as `kflex render -f dir/` and the controller do it (one renderer,
//! every core): the cost of a vcluster control plane beside a k8s one, measured alternately in
//! one run (target, issue 14: at most 1.5 times), and the fleet throughput in the process.
//!
//! `cargo bench --bench render` prints each figure with met or MISSED. The whole process, input
//! parsing and output included, is `benches/process.rs`.

#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its numbers on stdout"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

/// The allocator the kflex binary uses (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use kflex::batch::{default_threads, render_batch};
use kflex::output::{Formatted, Target, finish};
use kflex_core::api::{ControlPlane, ControlPlaneSpec};
use kflex_core::render::{HookCatalog, Renderer, TemplateSet};
use kflex_core::settings::Settings;

const FLEET: usize = 1000;
const ROUNDS: usize = 15;
const TARGET_RATIO: f64 = 1.5;

fn control_planes(type_: &str, count: usize) -> Vec<ControlPlane> {
    (0..count)
        .map(|i| {
            let spec: ControlPlaneSpec =
                serde_json::from_value(serde_json::json!({ "type": type_ })).expect("valid spec");
            ControlPlane::new(&format!("cp-{i:04}"), spec)
        })
        .collect()
}

/// What `kflex render -f dir/` does between reading its input and writing stdout; the bytes.
fn render_to_yaml(renderer: &Renderer, cps: &[ControlPlane]) -> usize {
    let target = Target {
        json: false,
        dir: None,
    };
    let finished = render_batch(
        renderer,
        cps,
        &HookCatalog::default(),
        default_threads(),
        &[],
        |manifests| finish(manifests, &target).map_err(anyhow::Error::from),
    )
    .expect("renders");
    finished
        .into_iter()
        .map(|set| match set.output {
            Formatted::Yaml(text) => text.len(),
            other => panic!("expected YAML, got {other:?}"),
        })
        .sum()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let renderer = Renderer::new(Settings::default(), &TemplateSet::embedded()).expect("compiles");
    let k8s = control_planes("k8s", FLEET);
    let vcluster = control_planes("vcluster", FLEET);
    // Warm the caches (one shape per template) as a long-running controller has them.
    black_box(render_to_yaml(&renderer, &k8s[..2]));
    black_box(render_to_yaml(&renderer, &vcluster[..2]));
    let (mut k8s_times, mut vcluster_times) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        black_box(render_to_yaml(&renderer, &k8s));
        k8s_times.push(started.elapsed());
        let started = Instant::now();
        black_box(render_to_yaml(&renderer, &vcluster));
        vcluster_times.push(started.elapsed());
    }
    let (k8s_median, vcluster_median) = (median(k8s_times), median(vcluster_times));
    let per_second = |d: Duration| FLEET as f64 / d.as_secs_f64();
    println!(
        "in one process, {FLEET} control planes, {ROUNDS} alternating rounds (medians): k8s \
         {k8s_median:?} ({:.0}/s), vcluster {vcluster_median:?} ({:.0}/s)",
        per_second(k8s_median),
        per_second(vcluster_median)
    );
    let ratio = vcluster_median.as_secs_f64() / k8s_median.as_secs_f64();
    let verdict = if ratio <= TARGET_RATIO {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "a vcluster control plane costs {ratio:.2} times a k8s one (target at most {TARGET_RATIO}): {verdict}"
    );
}
