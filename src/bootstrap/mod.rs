//! `kflex bootstrap …`: the programs that create every secret inside the hosting cluster (the
//! rendered Jobs and sidecars run them). Each is idempotent, says what it did in one line per
//! object, exits non-zero with a message on failure, and never prints secret material. The
//! contract with the renderer is docs/bootstrap.md.
//!
//! The deciding is done by pure functions over a Secret's current data and the time
//! (`certificates`, `kubeconfigs`, `publish`, `tokens`, `database`); `run` wires them to the
//! command line, the clock and the Kubernetes API.

pub mod address;
pub mod backup;
pub mod certificates;
pub mod database;
pub mod duration;
pub mod kubeconfig;
pub mod kubeconfigs;
pub mod pki;
pub mod publish;
pub mod random;
pub mod run;
pub mod secrets;
pub mod tokens;
