//! The ECS cluster the workers and their flow runs run in.
use super::{AttrDef, KindDef};

pub const NAME: &str = "name";
/// `enabled` or `disabled`.
pub const CONTAINER_INSIGHTS: &str = "container_insights";

pub const DEF: KindDef = KindDef {
    name: "ecs_cluster",
    attrs: &[
        AttrDef::new(NAME).replace(),
        AttrDef::new(CONTAINER_INSIGHTS),
        AttrDef::TAGS,
    ],
    ..KindDef::AWS
};
