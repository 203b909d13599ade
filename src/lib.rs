//! prefect-ecs: a Prefect worker stack on ECS Fargate from one TOML file.
//! See ARCHITECTURE.md for the codemap and the invariants.

pub mod apply;
pub mod cli;
pub mod commands;
pub mod diagnose;
pub mod diff;
pub mod graph;
pub mod model;
pub mod outputs;
pub mod plan;
pub mod planfile;
pub mod progress;
pub mod provider;
pub mod render;
pub mod secret;
pub mod spec;
pub mod verify;

#[cfg(test)]
mod core_tests;
