//! The queue's resource policy: EventBridge's rule of this stack may send to it, nothing else.
//! An attribute of the queue in SQS (no tags of its own): the stack's when its queue is. A
//! resource of its own because it names the rule, which names the queue.
use super::{AttrDef, KindDef};

pub const QUEUE_URL: &str = "queue_url";
pub const DOCUMENT: &str = "document";

pub const DEF: KindDef = KindDef {
    name: "sqs_queue_policy",
    attrs: &[
        AttrDef::new(QUEUE_URL).replace(),
        AttrDef::new(DOCUMENT).policy(),
    ],
    ..KindDef::AWS
};
