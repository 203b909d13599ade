//! An EC2 VPC.
use super::{AttrDef, KindDef};

pub const CIDR_BLOCK: &str = "cidr_block";
pub const ENABLE_DNS_SUPPORT: &str = "enable_dns_support";
pub const ENABLE_DNS_HOSTNAMES: &str = "enable_dns_hostnames";

pub const DEF: KindDef = KindDef {
    name: "vpc",
    attrs: &[
        AttrDef::new(CIDR_BLOCK).replace(),
        AttrDef::new(ENABLE_DNS_SUPPORT),
        AttrDef::new(ENABLE_DNS_HOSTNAMES),
        AttrDef::TAGS,
    ],
    ..KindDef::AWS
};
