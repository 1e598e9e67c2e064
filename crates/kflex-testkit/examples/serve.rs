//! Serves an empty fake API over HTTP and prints a kubeconfig for it, for trying kflex's
//! controller or its end-to-end suite without a cluster:
//!
//! ```sh
//! cargo run -p kflex-testkit --example serve > /tmp/fake.kubeconfig &
//! KFLEX_E2E_FAKE_API=1 KFLEX_E2E_KUBECONFIG=/tmp/fake.kubeconfig cargo test --test e2e -- --nocapture
//! ```
//!
//! The fake is not Kubernetes: no pods run, nothing is garbage-collected, and admission and RBAC
//! are not enforced (`KFLEX_E2E_FAKE_API` makes the suite skip its admission check). It shows
//! that the suite and the controller agree, not that a cluster does.

#![allow(clippy::print_stdout, reason = "the kubeconfig goes to stdout")]

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let fake = kflex_testkit::FakeApi::new();
    let address = fake.serve_http().await?;
    println!("{}", kflex_testkit::FakeApi::kubeconfig(address));
    std::future::pending::<()>().await;
    Ok(())
}
