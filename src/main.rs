//! The `kflex` binary: run the command, print the error chain once on stderr, map it to an exit
//! code. Data goes to stdout, diagnostics to stderr.

use std::process::ExitCode;

/// Rendering builds and frees many small object trees; mimalloc does that about a third faster
/// than the system allocator (see benches/render.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match kflex::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", kflex::cli::describe_error(&err));
            ExitCode::FAILURE
        }
    }
}
