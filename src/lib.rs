//! prefect-ecs: a Prefect worker stack on ECS Fargate from one TOML file.
//! See ARCHITECTURE.md for the codemap and the invariants.
//!
//! The pure core lives in the `prefect-ecs-core` crate (`crates/core`) and is re-exported
//! here under its module names; this crate adds the provider (AWS and Prefect), the commands
//! and their output.

pub use prefect_ecs_core::{
    apply, cost, diagnose, diff, graph, image, kinds, model, network, online, outputs, plan,
    planfile, policy, render, secret, spec, stack, verify,
};

pub mod cli;
pub mod commands;
pub mod habits;
pub mod progress;
pub mod provider;
