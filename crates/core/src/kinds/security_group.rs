//! A security group with its rules (`{protocol, from_port, to_port, cidr | group}`).
use super::{AttrDef, KindDef};

pub const VPC_ID: &str = "vpc_id";
pub const GROUP_NAME: &str = "group_name";
pub const DESCRIPTION: &str = "description";
pub const INGRESS: &str = "ingress";
pub const EGRESS: &str = "egress";

pub const DEF: KindDef = KindDef {
    name: "security_group",
    attrs: &[
        AttrDef::new(VPC_ID).replace(),
        AttrDef::new(GROUP_NAME).replace(),
        AttrDef::new(DESCRIPTION).replace(),
        AttrDef::new(INGRESS),
        AttrDef::new(EGRESS),
        AttrDef::TAGS,
    ],
    ..KindDef::AWS
};
