//! Embeds every `templates/**/*.yaml` of the repository into the library, sorted by path, so the
//! binary renders without any file next to it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let templates = manifest_dir.join("../../templates");
    println!("cargo:rerun-if-changed={}", templates.display());
    let mut files = Vec::new();
    collect(&templates, &templates, &mut files);
    files.sort();
    let mut code =
        String::from("/// Embedded templates: (path relative to `templates/`, content).\n");
    code.push_str("pub(crate) static EMBEDDED_TEMPLATES: &[(&str, &str)] = &[\n");
    for (relative, absolute) in &files {
        writeln!(code, "    ({relative:?}, include_str!({absolute:?})),").expect("write to String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("embedded_templates.rs"), code).expect("OUT_DIR is writable");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot read templates directory {}: {err}", dir.display()));
    for entry in entries {
        let path = entry.expect("readable directory entry").path();
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if is_dir {
            collect(root, &path, files);
        } else if path.extension().is_some_and(|ext| ext == "yaml") {
            let relative = path.strip_prefix(root).expect("inside root");
            let relative = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let absolute = path.canonicalize().expect("existing file");
            files.push((relative, absolute.to_string_lossy().into_owned()));
        }
    }
}
