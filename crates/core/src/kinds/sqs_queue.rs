//! The SQS queue ECS task state changes reach the workers through (EventBridge → SQS): the
//! prefect-aws worker's observer reads it to mark a flow run whose task died as crashed.
use super::{AttrDef, KindDef};

pub const NAME: &str = "name";
/// Seconds a message is kept unread (prefect-aws's own stack: 7 days).
pub const MESSAGE_RETENTION_PERIOD: &str = "message_retention_period";

pub const DEF: KindDef = KindDef {
    name: "sqs_queue",
    attrs: &[
        AttrDef::new(NAME).replace(),
        AttrDef::new(MESSAGE_RETENTION_PERIOD),
        AttrDef::TAGS,
    ],
    ..KindDef::AWS
};
