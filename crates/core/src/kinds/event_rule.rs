//! The EventBridge rule sending the stack's cluster's ECS task state changes to the queue,
//! with its one target.
use super::{AttrDef, KindDef};

pub const NAME: &str = "name";
pub const EVENT_PATTERN: &str = "event_pattern";
/// `ENABLED` or `DISABLED`.
pub const STATE: &str = "state";
/// The ARN of the rule's one target (the queue).
pub const TARGET_ARN: &str = "target_arn";

pub const DEF: KindDef = KindDef {
    name: "event_rule",
    attrs: &[
        AttrDef::new(NAME).replace(),
        AttrDef::new(EVENT_PATTERN),
        AttrDef::new(STATE),
        AttrDef::new(TARGET_ARN),
        AttrDef::TAGS,
    ],
    ..KindDef::AWS
};
