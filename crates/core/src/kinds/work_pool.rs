//! A Prefect work pool of type `ecs`, in the Prefect API (Cloud or self-hosted). It has no tags
//! of its own: the ownership tags live in its description's marker (`provider/prefect.rs`).
use super::{AttrDef, KindDef};

pub const NAME: &str = "name";
/// Prefect cannot change a pool's type in place.
pub const TYPE: &str = "type";
pub const DESCRIPTION: &str = "description";
pub const BASE_JOB_TEMPLATE: &str = "base_job_template";

pub const DEF: KindDef = KindDef {
    name: "prefect_work_pool",
    attrs: &[
        AttrDef::new(NAME).replace(),
        AttrDef::new(TYPE).replace(),
        AttrDef::new(DESCRIPTION),
        AttrDef::new(BASE_JOB_TEMPLATE),
        AttrDef::TAGS,
    ],
    aws: false,
    ..KindDef::AWS
};
