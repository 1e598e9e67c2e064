//! Issue 11's bound on hostile input: every case of `tests/hostile/cases.rs` ends within 2
//! seconds and 512 MiB, with an error and nothing on stdout, at kflex's default caps, on the
//! release binary. `cargo bench --bench hostile` prints each case's wall time and peak resident
//! memory with met or MISSED.
//!
//! Each case runs from a process of its own (this binary again, with `--case N`), so that
//! `getrusage(RUSAGE_CHILDREN)` there is that one kflex run's peak, not the largest so far.

#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its numbers on stdout"
)]

#[path = "../tests/hostile/cases.rs"]
#[expect(dead_code, reason = "Scale::Test is for tests/hostile.rs")]
mod cases;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};

use cases::{Scale, cases};

const TIME_LIMIT: Duration = Duration::from_secs(2);
const MEMORY_LIMIT_KIB: i64 = 512 * 1024;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kflex"))
}

/// `--case N --dir D`: runs one case, prints `<ok> <milliseconds> <peak KiB>` and exits.
fn one_case(index: usize, dir: &Path) {
    let all = cases(dir, Scale::Defaults, false);
    let case = &all[index];
    let started = Instant::now();
    let (stdout, stderr, succeeded) = case.run(binary());
    let elapsed = started.elapsed();
    let peak_kib = getrusage(UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage")
        .max_rss();
    let refused = !succeeded
        && stdout.is_empty()
        && case
            .expect
            .iter()
            .all(|text| stderr.contains(text.as_str()));
    if !refused {
        eprintln!("{}: not refused as expected: {stderr}", case.name);
    }
    println!("{} {} {peak_kib}", refused, elapsed.as_millis());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--case") {
        let index = args[at + 1].parse().expect("a case number");
        let dir = PathBuf::from(&args[at + 3]);
        one_case(index, &dir);
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let all = cases(dir.path(), Scale::Defaults, true);
    let this = std::env::current_exe().expect("this benchmark");
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut missed = 0;
    println!(
        "hostile inputs, release binary, default caps (targets: < {TIME_LIMIT:?}, < 512 MiB):"
    );
    for (index, case) in all.iter().enumerate() {
        let output = Command::new(&this)
            .args(["--case", &index.to_string(), "--dir"])
            .arg(dir.path())
            .output()
            .expect("the case runs");
        let line = String::from_utf8_lossy(&output.stdout);
        let mut fields = line.split_whitespace();
        let refused = fields.next() == Some("true");
        let millis: u64 = fields
            .next()
            .and_then(|f| f.parse().ok())
            .unwrap_or(u64::MAX);
        let peak_kib: i64 = fields
            .next()
            .and_then(|f| f.parse().ok())
            .unwrap_or(i64::MAX);
        let fast = Duration::from_millis(millis) < TIME_LIMIT;
        let small = peak_kib < MEMORY_LIMIT_KIB;
        if !(refused && fast && small) {
            missed += 1;
        }
        println!(
            "  {:<40} {:>6} ms {}  {:>6.1} MiB {}  {}",
            case.name,
            millis,
            verdict(fast),
            peak_kib as f64 / 1024.0,
            verdict(small),
            if refused { "refused" } else { "NOT REFUSED" },
        );
    }
    println!(
        "every hostile case within 2 s and 512 MiB, refused: {} ({missed} of {} missed)",
        verdict(missed == 0),
        all.len()
    );
}
