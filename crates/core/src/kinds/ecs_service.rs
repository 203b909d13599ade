//! A worker's ECS service on Fargate.
use super::{AttrDef, KindDef};

pub const NAME: &str = "name";
pub const CLUSTER: &str = "cluster";
pub const TASK_DEFINITION: &str = "task_definition";
pub const DESIRED_COUNT: &str = "desired_count";
pub const LAUNCH_TYPE: &str = "launch_type";
/// `{subnets, security_groups, assign_public_ip}`.
pub const NETWORK: &str = "network";
pub const SERVICE_REGISTRIES: &str = "service_registries";
pub const DEPLOYMENT_CIRCUIT_BREAKER: &str = "deployment_circuit_breaker";
pub const ENABLE_EXECUTE_COMMAND: &str = "enable_execute_command";
/// Set by the plan, never by the graph nor discovery: new tasks although nothing the service
/// shows changed (the secret its task definition reads got a new value, which ECS reads only
/// when a task starts).
pub const FORCE_NEW_DEPLOYMENT: &str = "force_new_deployment";

pub const DEF: KindDef = KindDef {
    name: "ecs_service",
    attrs: &[
        AttrDef::new(NAME).replace(),
        AttrDef::new(CLUSTER).replace(),
        AttrDef::new(TASK_DEFINITION),
        AttrDef::new(DESIRED_COUNT),
        AttrDef::new(LAUNCH_TYPE).replace(),
        AttrDef::new(NETWORK),
        // UpdateService takes them in place (a new deployment).
        AttrDef::new(SERVICE_REGISTRIES),
        // Some ECS implementations do not report these back; where absent they cannot drift.
        AttrDef::new(DEPLOYMENT_CIRCUIT_BREAKER).optional(),
        AttrDef::new(ENABLE_EXECUTE_COMMAND).optional(),
        AttrDef::new(FORCE_NEW_DEPLOYMENT).optional(),
        AttrDef::TAGS,
    ],
    ..KindDef::AWS
};
