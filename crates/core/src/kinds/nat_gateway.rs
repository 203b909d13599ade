//! A public NAT gateway in a public subnet: the private subnets' way out.
use super::{AttrDef, KindDef};

pub const SUBNET_ID: &str = "subnet_id";
pub const ALLOCATION_ID: &str = "allocation_id";
pub const CONNECTIVITY_TYPE: &str = "connectivity_type";

pub const DEF: KindDef = KindDef {
    name: "nat_gateway",
    attrs: &[
        AttrDef::new(SUBNET_ID).replace(),
        AttrDef::new(ALLOCATION_ID).replace(),
        AttrDef::new(CONNECTIVITY_TYPE).replace(),
        AttrDef::TAGS,
    ],
    ..KindDef::AWS
};
