//! The image definition keeps the contract the rendered pods rely on (docs/bootstrap.md): a
//! numeric non-root user, the kflex binary as entrypoint, a toolchain the crate accepts, and one
//! image tag everywhere.

const CONTAINERFILE: &str = include_str!("../../Containerfile");

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
    let manifest = include_str!("../../Cargo.toml");
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

/// Every `ghcr.io/kubestellar/kflex:<tag>` in `text`, with where it is.
fn kflex_tags(name: &str, text: &str, found: &mut Vec<(String, String)>) {
    const IMAGE: &str = "ghcr.io/kubestellar/kflex:";
    for (at, _) in text.match_indices(IMAGE) {
        let rest = &text[at + IMAGE.len()..];
        if rest.starts_with("<version>") {
            // Prose about the scheme itself.
            continue;
        }
        let tag: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect();
        found.push((name.to_owned(), tag));
    }
}

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("readable").path();
        if path.is_dir() {
            files_under(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "md" || e == "yaml" || e == "yml")
        {
            out.push(path);
        }
    }
}

/// The image kflex renders, the one the Containerfile's build command tags, and the ones the
/// docs and examples name are one tag: the crate's version (a `v` prefix or `git describe`
/// would build or pull an image the rendered pods do not run).
#[test]
fn every_kflex_image_tag_is_the_crate_version() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("Containerfile"), root.join("README.md")];
    for dir in ["docs", "examples", "tests/golden/cp1"] {
        files_under(&root.join(dir), &mut files);
    }
    let mut found = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable");
        let name = path
            .strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string();
        kflex_tags(&name, &text, &mut found);
    }
    let named = |name: &str| found.iter().any(|(file, _)| file == name);
    assert!(named("Containerfile") && named("README.md"), "{found:?}");
    assert!(
        named("tests/golden/cp1/expected.yaml"),
        "the rendered image: {found:?}"
    );
    let wrong: Vec<_> = found
        .iter()
        .filter(|(_, tag)| tag != env!("CARGO_PKG_VERSION"))
        .collect();
    assert!(
        wrong.is_empty(),
        "not {}: {wrong:?}",
        env!("CARGO_PKG_VERSION")
    );
}
