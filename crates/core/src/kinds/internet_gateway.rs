//! An internet gateway, attached to the stack's VPC.
use super::{AttrDef, KindDef};

pub const VPC_ID: &str = "vpc_id";

pub const DEF: KindDef = KindDef {
    name: "internet_gateway",
    attrs: &[AttrDef::new(VPC_ID).replace(), AttrDef::TAGS],
    ..KindDef::AWS
};
