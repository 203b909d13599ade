//! An EC2 subnet, public (instances get a public IP) or private.
use super::{AttrDef, KindDef};

pub const VPC_ID: &str = "vpc_id";
pub const CIDR_BLOCK: &str = "cidr_block";
pub const AVAILABILITY_ZONE: &str = "availability_zone";
pub const MAP_PUBLIC_IP_ON_LAUNCH: &str = "map_public_ip_on_launch";

pub const DEF: KindDef = KindDef {
    name: "subnet",
    attrs: &[
        AttrDef::new(VPC_ID).replace(),
        AttrDef::new(CIDR_BLOCK).replace(),
        AttrDef::new(AVAILABILITY_ZONE).replace(),
        AttrDef::new(MAP_PUBLIC_IP_ON_LAUNCH),
        AttrDef::TAGS,
    ],
    ..KindDef::AWS
};
