//! A worker's task definition: one container. A revision is immutable, so every change
//! registers a new one, and the old one is deregistered only after the service has moved off
//! it (create before destroy).
use super::{AttrDef, KindDef};

pub const FAMILY: &str = "family";
pub const CPU: &str = "cpu";
pub const MEMORY: &str = "memory";
pub const NETWORK_MODE: &str = "network_mode";
pub const REQUIRES_COMPATIBILITIES: &str = "requires_compatibilities";
pub const EXECUTION_ROLE_ARN: &str = "execution_role_arn";
pub const TASK_ROLE_ARN: &str = "task_role_arn";
/// The one container: `{name, image, essential, command, environment, secrets, health_check,
/// stop_timeout, log_configuration}`.
pub const CONTAINER: &str = "container";
/// `X86_64` or `ARM64` (Fargate's `runtimePlatform.cpuArchitecture`; absent is x86).
pub const CPU_ARCHITECTURE: &str = "cpu_architecture";
pub const X86_64: &str = "X86_64";
pub const ARM64: &str = "ARM64";

pub const DEF: KindDef = KindDef {
    name: "ecs_task_definition",
    attrs: &[
        AttrDef::new(FAMILY).replace(),
        AttrDef::new(CPU).replace(),
        AttrDef::new(MEMORY).replace(),
        AttrDef::new(NETWORK_MODE).replace(),
        AttrDef::new(REQUIRES_COMPATIBILITIES).replace(),
        AttrDef::new(EXECUTION_ROLE_ARN).replace(),
        AttrDef::new(TASK_ROLE_ARN).replace(),
        AttrDef::new(CONTAINER).replace(),
        AttrDef::new(CPU_ARCHITECTURE).replace(),
        AttrDef::TAGS,
    ],
    create_before_destroy: true,
    // A container's command and its health check's are argument lists.
    ordered: &["command"],
    ..KindDef::AWS
};
