//! The pure core of prefect-ecs: spec → graph → diff → plan, the renderings of a plan, the
//! saved plan file and the executor, which drives a [`apply::Provider`] it is given. This
//! crate depends on no AWS SDK, no HTTP client and no socket-capable runtime: everything
//! here is synchronous and pure except the executor, which only awaits its provider.
//! See ARCHITECTURE.md for the codemap and the invariants.

pub mod apply;
pub mod cost;
pub mod diagnose;
pub mod diff;
pub mod graph;
pub mod image;
pub mod kinds;
pub mod model;
pub mod network;
pub mod online;
pub mod outputs;
pub mod plan;
pub mod planfile;
pub mod policy;
pub mod render;
pub mod secret;
pub mod spec;
pub mod stack;
pub mod verify;

#[cfg(test)]
mod core_tests;
