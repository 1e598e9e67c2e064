//! kflex-core: the pure heart of kflex.
//!
//! Owns the API types, the render settings and `render()`. It must never do I/O: no filesystem,
//! network, environment, clock, randomness or threads. Callers read inputs, call in, and write
//! outputs; `tests/purity.rs` keeps it that way.

pub mod api;
pub mod manifest;
pub mod render;
pub mod settings;
pub mod text;
pub mod yaml;
