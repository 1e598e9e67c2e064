//! `kflex bootstrap`: the Jobs' commands against real servers (PostgreSQL, TLS, an S3-compatible
//! store) and the API they write through. One test binary: each links kube, tokio, rustls and
//! the PostgreSQL client, and CI builds every binary.

#[path = "../support/mod.rs"]
mod support;
#[path = "../support/within.rs"]
mod time_limit;

use time_limit::within;

mod api;
mod backup;
mod backup_s3;
mod cli;
mod database;
mod tls;
