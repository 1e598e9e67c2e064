//! Lays out the functions `kflex render` runs side by side in release builds, so a render maps
//! few of the binary's code pages: its peak memory is mostly code the kernel maps in 64 KiB
//! blocks around each function it runs (issue 14; link/regenerate.py says how the order is
//! made, benches/process.rs measures the peak).
//!
//! Only where the linker is known to be lld (Rust's default for x86_64-unknown-linux-gnu) and
//! nobody chose another: GNU ld refuses the option. The order never changes what the binary does.

use std::env;
use std::path::PathBuf;

fn main() {
    let order = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("link")
        .join("render.order");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-changed=build.rs");
    if default_lld_release_build() && order.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=kflex=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        // Symbols the order names but this build lacks (renamed since) are expected, not news.
        println!("cargo:rustc-link-arg-bin=kflex=-Wl,--no-warn-symbol-ordering");
    }
}

/// A release build for x86_64 Linux with glibc, linked by Rust's default linker.
fn default_lld_release_build() -> bool {
    let is = |name: &str, value: &str| env::var(name).is_ok_and(|v| v == value);
    let rustflags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    is("PROFILE", "release")
        && is("CARGO_CFG_TARGET_ARCH", "x86_64")
        && is("CARGO_CFG_TARGET_OS", "linux")
        && is("CARGO_CFG_TARGET_ENV", "gnu")
        && env::var_os("RUSTC_LINKER").is_none()
        && !rustflags.contains("linker")
        && !rustflags.contains("fuse-ld")
}
