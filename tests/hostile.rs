//! Hostile inputs as `kflex render` meets them — endless streams and devices, inputs past the
//! byte caps, alias bombs, deep nesting, floods of tiny nodes or documents: each must end within
//! 2 seconds and 512 MiB, with an error and nothing on stdout.
//!
//! One test runs every case in turn, and this file has no other: the peak memory measured is
//! `getrusage(RUSAGE_CHILDREN)`'s, the largest any child of this process has had so far, so
//! children of tests running alongside would blur it.
//!
//! Where the work grows with the caps, cases run with smaller caps than the defaults (4 MiB of
//! input, 64 MiB in total): a debug build counts about 600,000 nodes a second, so at the default
//! caps the 2 million nodes or 384 MiB of parsed memory the parser allows take longer than 2
//! seconds here. A release build refuses the same inputs at the default caps within a second.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};

const TIME_LIMIT: Duration = Duration::from_secs(2);
const MEMORY_LIMIT_KIB: i64 = 512 * 1024;

fn kflex() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kflex"));
    cmd.env_clear();
    cmd
}

/// Runs `cmd` (with an endless stdin if `feed`), asserts the contract, returns stderr.
fn hostile(case: &str, cmd: &mut Command, feed: bool) -> String {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if feed { Stdio::piped() } else { Stdio::null() });
    let start = Instant::now();
    let mut child = cmd.spawn().expect("runs");
    let output = std::thread::scope(|scope| {
        if let Some(mut stdin) = child.stdin.take() {
            scope.spawn(move || endless(&mut stdin));
        }
        child.wait_with_output().expect("runs")
    });
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let peak_kib = getrusage(UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage")
        .max_rss();
    assert!(!output.status.success(), "{case}: must fail");
    assert!(output.stdout.is_empty(), "{case}: stdout must stay empty");
    assert!(
        elapsed < TIME_LIMIT,
        "{case}: took {elapsed:?}, more than {TIME_LIMIT:?}: {stderr}"
    );
    assert!(
        peak_kib < MEMORY_LIMIT_KIB,
        "{case}: a child reached {peak_kib} KiB of memory: {stderr}"
    );
    eprintln!("{case}: {elapsed:?}, peak so far {} MiB", peak_kib / 1024);
    stderr
}

/// Writes until the reader goes away.
fn endless(out: &mut dyn std::io::Write) {
    let chunk = [b'a'; 64 << 10];
    while out.write_all(&chunk).is_ok() {}
}

/// A file of `size` zero bytes that takes no disk (sparse).
fn sparse(path: &Path, size: u64) {
    std::fs::File::create(path)
        .and_then(|file| file.set_len(size))
        .expect("written");
}

fn contains(stderr: &str, text: &str) {
    assert!(stderr.contains(text), "expected {text:?} in: {stderr}");
}

#[test]
fn hostile_inputs_end_quickly_in_bounded_memory_with_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name);
    let big = (64 << 20) + 1;

    #[cfg(unix)]
    for device in ["/dev/zero", "/dev/urandom"] {
        let stderr = hostile(device, kflex().args(["render", "-f", device]), false);
        contains(
            &stderr,
            "larger than 64 MiB, the most kflex reads of one input",
        );
        contains(&stderr, "--max-input-bytes");
        let stderr = hostile(
            device,
            kflex().args(["render", "cp1", "--values", device]),
            false,
        );
        contains(&stderr, "larger than 64 MiB");
    }

    let stderr = hostile("endless stdin", kflex().args(["render", "-f", "-"]), true);
    contains(&stderr, "<stdin>: larger than 64 MiB");

    #[cfg(unix)]
    {
        let fifo = path("fifo.yaml");
        let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(made.success());
        let stderr = std::thread::scope(|scope| {
            scope.spawn(|| {
                if let Ok(mut writer) = std::fs::OpenOptions::new().write(true).open(&fifo) {
                    endless(&mut writer);
                }
            });
            hostile(
                "endless FIFO",
                kflex().args(["render", "-f"]).arg(&fifo),
                false,
            )
        });
        contains(&stderr, "larger than 64 MiB");
    }

    // Files past the cap: a -f file, a template, and in an Argo CD source directory.
    sparse(&path("large.yaml"), big);
    let stderr = hostile(
        "large file",
        kflex().args(["render", "-f"]).arg(path("large.yaml")),
        false,
    );
    contains(&stderr, "large.yaml: larger than 64 MiB");
    std::fs::create_dir_all(path("templates/k8s")).expect("created");
    sparse(&path("templates/k8s/extra.yaml"), big);
    let stderr = hostile(
        "large template",
        kflex()
            .args(["render", "cp1", "--templates"])
            .arg(path("templates")),
        false,
    );
    contains(&stderr, "extra.yaml: larger than 64 MiB");
    for file in ["a.yaml", "kflex.yaml"] {
        let source = path(&format!("source-{file}"));
        std::fs::create_dir(&source).expect("created");
        sparse(&source.join(file), big);
        let stderr = hostile(
            file,
            kflex().args(["render", "--argocd"]).current_dir(&source),
            false,
        );
        contains(&stderr, &format!("{file}: larger than 64 MiB"));
    }

    // Within the byte cap, but too much for the parser.
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let levels = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in levels.windows(2) {
        let items = vec![format!("*{}", pair[0]); 10].join(", ");
        bomb.push_str(&format!("{}: &{} [{items}]\n", pair[1], pair[1]));
    }
    std::fs::write(path("bomb.yaml"), bomb).expect("written");
    let stderr = hostile(
        "alias bomb",
        kflex().args(["render", "-f"]).arg(path("bomb.yaml")),
        false,
    );
    contains(&stderr, "bomb.yaml: too large to read: ");
    contains(
        &stderr,
        "more than 2097152 nodes, the limit for an input of at most 64 MiB",
    );

    std::fs::write(path("deep.yaml"), "[".repeat(60 << 20)).expect("written");
    let stderr = hostile(
        "deep nesting",
        kflex().args(["render", "-f"]).arg(path("deep.yaml")),
        false,
    );
    contains(&stderr, "nest more than 64 levels deep");

    let cap = 4 << 20;
    let tiny = format!("[{}a]", "a,".repeat(cap / 2 - 2));
    std::fs::write(path("tiny.yaml"), tiny).expect("written");
    let stderr = hostile(
        "tiny nodes",
        kflex()
            .args(["render", "--max-input-bytes", "4Mi", "-f"])
            .arg(path("tiny.yaml")),
        false,
    );
    contains(
        &stderr,
        "more than 250000 nodes, the limit for an input of at most 4 MiB (raise it with --max-input-bytes)",
    );

    // Nested single-entry mappings: few bytes and nodes, much memory once parsed.
    let chain = format!("{}1{}", "{a: ".repeat(60), "}".repeat(60));
    let chains = vec![chain; 16_000].join(", ");
    std::fs::write(path("mappings.yaml"), format!("[{chains}]")).expect("written");
    let stderr = hostile(
        "nested mappings",
        kflex()
            .args(["render", "--max-total-input-bytes", "64Mi", "-f"])
            .arg(path("mappings.yaml")),
        false,
    );
    contains(
        &stderr,
        "parsed, the input would take more than 96 MiB of memory, what kflex allows its parsed inputs (raise it with --max-total-input-bytes)",
    );

    std::fs::write(path("documents.yaml"), "---\n".repeat(cap / 4)).expect("written");
    let stderr = hostile(
        "empty documents",
        kflex()
            .args(["render", "--max-input-bytes", "4Mi", "-f"])
            .arg(path("documents.yaml")),
        false,
    );
    contains(&stderr, "more than 65536 documents");

    let mut long = std::fs::File::create(path("long.yaml")).expect("created");
    long.write_all(&vec![b'a'; 32 << 20]).expect("written");
    let stderr = hostile(
        "one long scalar",
        kflex().args(["render", "-f"]).arg(path("long.yaml")),
        false,
    );
    contains(&stderr, "a document must be a Kubernetes object");
}
