//! kflex: the command-line tool and (in later modules) the in-cluster programs around the pure
//! renderer in `kflex-core`. This crate owns every side effect: reading files and the
//! environment, writing output. The rendering itself is `kflex_core::render`.

pub mod batch;
pub mod bootstrap;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod input;
pub mod output;
pub mod read;
#[cfg(test)]
mod roundtrip_tests;
