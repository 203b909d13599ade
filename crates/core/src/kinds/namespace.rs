//! A private DNS namespace in Cloud Map (Route 53 behind it), tied to the stack's VPC.
use super::{AttrDef, KindDef};

pub const NAME: &str = "name";
pub const VPC_ID: &str = "vpc_id";

pub const DEF: KindDef = KindDef {
    name: "service_discovery_namespace",
    attrs: &[
        AttrDef::new(NAME).replace(),
        AttrDef::new(VPC_ID).replace(),
        AttrDef::TAGS,
    ],
    ..KindDef::AWS
};
