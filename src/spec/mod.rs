//! The stack spec: TOML in, a validated [`Spec`] out. Pure: no AWS, no network.

pub mod model;

pub use model::*;
