//! One `kflex render cp1` process, as Argo CD or a shell runs it: wall time per run and peak
//! resident memory. Target (issue 2): well under 5 ms and 10 MiB.
//!
//! `cargo bench --bench process` builds the release binary and prints the numbers and whether
//! the targets are met. It runs the binary many times; nothing else should load the machine.

#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its numbers on stdout"
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};

const RUNS: usize = 200;
const TARGET_MEDIAN: Duration = Duration::from_millis(5);
const TARGET_PEAK_KIB: i64 = 10 * 1024;

fn main() {
    let binary = env!("CARGO_BIN_EXE_kflex");
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let status = Command::new(binary)
            .args(["render", "cp1"])
            .env_clear()
            .stdout(Stdio::null())
            .status()
            .expect("kflex runs");
        times.push(started.elapsed());
        assert!(status.success(), "kflex render cp1 failed");
    }
    times.sort();
    let median = times[RUNS / 2];
    let p95 = times[RUNS * 95 / 100];
    // ru_maxrss of RUSAGE_CHILDREN: the largest peak of any child, in KiB on Linux.
    let peak_kib = getrusage(UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage")
        .max_rss();
    println!(
        "kflex render cp1 ({RUNS} runs): min {:?}, median {median:?}, p95 {p95:?}",
        times[0]
    );
    println!("peak resident memory: {:.1} MiB", peak_kib as f64 / 1024.0);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "target median < {TARGET_MEDIAN:?}: {}",
        verdict(median < TARGET_MEDIAN)
    );
    println!(
        "target peak < 10 MiB: {}",
        verdict(peak_kib < TARGET_PEAK_KIB)
    );
}
