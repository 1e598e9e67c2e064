//! The image definition keeps the contract the rendered pods rely on (docs/bootstrap.md): a
//! numeric non-root user, the kflex binary as entrypoint, a toolchain the crate accepts.

const CONTAINERFILE: &str = include_str!("../Containerfile");

/// The instructions of the last stage (the runtime image).
fn runtime_stage() -> Vec<&'static str> {
    let lines: Vec<&str> = CONTAINERFILE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM");
    lines[last_from..].to_vec()
}

#[test]
fn the_runtime_runs_kflex_as_numeric_user_65532() {
    let stage = runtime_stage();
    assert!(stage.contains(&"USER 65532:65532"), "{stage:?}");
    assert!(
        stage.contains(&r#"ENTRYPOINT ["/usr/local/bin/kflex"]"#),
        "{stage:?}"
    );
    assert!(
        stage[0].contains("distroless"),
        "a minimal base without a shell: {}",
        stage[0]
    );
}

#[test]
fn the_build_uses_the_locked_dependencies_and_a_supported_toolchain() {
    assert!(CONTAINERFILE.contains("cargo build --release --locked --bin kflex"));
    let manifest = include_str!("../Cargo.toml");
    let rust_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("the workspace's rust-version");
    assert!(
        CONTAINERFILE.contains(&format!("rust:{rust_version}-")),
        "the build image's Rust is the crate's rust-version {rust_version}"
    );
}
