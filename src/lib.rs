//! prefect-ecs: a Prefect worker stack on ECS Fargate from one TOML file.
//! See ARCHITECTURE.md for the codemap and the invariants.

pub mod secret;
pub mod spec;
