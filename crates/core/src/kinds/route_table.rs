//! A route table with its routes (`{destination, target}`) and the subnets associated with it.
use super::{AttrDef, KindDef};

pub const VPC_ID: &str = "vpc_id";
pub const ROUTES: &str = "routes";
pub const SUBNET_IDS: &str = "subnet_ids";

pub const DEF: KindDef = KindDef {
    name: "route_table",
    attrs: &[
        AttrDef::new(VPC_ID).replace(),
        AttrDef::new(ROUTES),
        AttrDef::new(SUBNET_IDS),
        AttrDef::TAGS,
    ],
    ..KindDef::AWS
};
