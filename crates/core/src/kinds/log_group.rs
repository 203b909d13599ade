//! The CloudWatch Logs group of the workers and their flow runs.
use super::{AttrDef, KindDef};

pub const NAME: &str = "name";
pub const RETENTION_IN_DAYS: &str = "retention_in_days";

pub const DEF: KindDef = KindDef {
    name: "log_group",
    attrs: &[
        AttrDef::new(NAME).replace(),
        AttrDef::new(RETENTION_IN_DAYS),
        AttrDef::TAGS,
    ],
    ..KindDef::AWS
};
