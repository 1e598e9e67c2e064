//! The `kflex` binary: run the command, print the error chain once on stderr, map it to an exit
//! code. Data goes to stdout, diagnostics to stderr.

use std::process::ExitCode;

/// Rendering builds and frees many small object trees; mimalloc does that about a third faster
/// than the system allocator (see benches/render.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match kflex::cli::run() {
        Ok(kflex::cli::Outcome::Success) => ExitCode::SUCCESS,
        Ok(kflex::cli::Outcome::Differences) => ExitCode::from(1),
        Err(failure) => {
            eprintln!("{}", kflex::cli::describe_error(&failure.error));
            ExitCode::from(failure.code)
        }
    }
}
