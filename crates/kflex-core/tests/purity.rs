//! kflex-core must stay pure: no I/O, clock, randomness, environment or threads. This test
//! keeps the two ways that could change honest: the dependencies it may use, and what its
//! source may name. (`build.rs` embeds templates at compile time and is not part of the library.)

use std::path::{Path, PathBuf};

/// Crates with no I/O of their own: data types, serialization, templating, hashing.
const ALLOWED_DEPENDENCIES: [&str; 13] = [
    "base64",
    "granit-parser",
    "k8s-openapi",
    "kube-core",
    "kube-derive",
    "minijinja",
    "schemars",
    "serde",
    "serde-saphyr",
    "serde_json",
    "serde_path_to_error",
    "sha2",
    "thiserror",
];

/// Paths that would let the library reach outside its arguments. (`unsafe` is forbidden by the
/// workspace lints.)
const FORBIDDEN: [&str; 15] = [
    "std::fs",
    "std::env::",
    "std::net",
    "std::process",
    "std::thread",
    "std::time",
    "std::io::stdin",
    "std::io::stdout",
    "SystemTime",
    "Instant::",
    "tokio",
    "kube::",
    "kube_client",
    "rand::",
    "getrandom",
];

#[test]
fn dependencies_are_pure() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("Cargo.toml is readable");
    let section = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [dependencies] section");
    for line in section.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line
            .split(['=', '.', ' '])
            .next()
            .expect("a dependency name");
        assert!(
            ALLOWED_DEPENDENCIES.contains(&name),
            "kflex-core depends on {name}; the pure core may only use {ALLOWED_DEPENDENCIES:?}"
        );
    }
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("readable").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn source_names_no_io_clock_randomness_or_threads() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 10, "found the sources");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for forbidden in FORBIDDEN {
                assert!(
                    !code.contains(forbidden),
                    "{}:{}: the pure core must not use {forbidden}: {line}",
                    file.display(),
                    number + 1
                );
            }
            // Grouped imports could hide a forbidden module: `use std::{fs, ...}`.
            if code.contains("use std::{") {
                for module in ["fs", "env", "net", "process", "thread", "time"] {
                    let grouped = code.split(['{', ',', '}', ' ']).any(|part| part == module);
                    assert!(
                        !grouped,
                        "{}:{}: imports std::{module}",
                        file.display(),
                        number + 1
                    );
                }
            }
        }
    }
}
