//! Rendering throughput: 1, 100 and 1,000 `k8s` control planes in one process, to canonical
//! YAML, the way `kflex render -f dir/` does it (all cores, one shared renderer).
//! Target (issue 2): 1,000 control planes in under 200 ms on a 2-core machine.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// The allocator the kflex binary uses (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use kflex::batch::{default_threads, render_batch};
use kflex::output::{Formatted, Target, finish};
use kflex_core::api::{ControlPlane, ControlPlaneSpec};
use kflex_core::render::{HookCatalog, Renderer, TemplateSet};
use kflex_core::settings::Settings;

fn control_planes(count: usize) -> Vec<ControlPlane> {
    (0..count)
        .map(|i| {
            let spec: ControlPlaneSpec =
                serde_json::from_value(serde_json::json!({"type": "k8s"})).expect("valid spec");
            ControlPlane::new(&format!("cp-{i:04}"), spec)
        })
        .collect()
}

/// What `kflex render -f dir/` does between reading its input and writing stdout.
fn render_to_yaml(renderer: &Renderer, cps: &[ControlPlane], catalog: &HookCatalog) -> usize {
    let target = Target {
        json: false,
        dir: None,
    };
    let finished = render_batch(
        renderer,
        cps,
        catalog,
        default_threads(),
        &[],
        |manifests| finish(manifests, &target).map_err(anyhow::Error::from),
    )
    .expect("renders");
    let text: String = finished
        .into_iter()
        .map(|set| match set.output {
            Formatted::Yaml(text) => text,
            other => panic!("expected YAML, got {other:?}"),
        })
        .collect();
    text.len()
}

fn bench(c: &mut Criterion) {
    let renderer = Renderer::new(Settings::default(), &TemplateSet::embedded()).expect("compiles");
    let catalog = HookCatalog::default();
    let mut group = c.benchmark_group("render_k8s_to_yaml");
    group.sample_size(20);
    for count in [1, 100, 1000] {
        let cps = control_planes(count);
        group.bench_with_input(BenchmarkId::from_parameter(count), &cps, |b, cps| {
            b.iter(|| black_box(render_to_yaml(&renderer, cps, &catalog)));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
