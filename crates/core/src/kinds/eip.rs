//! An Elastic IP address, a NAT gateway's public address.
use super::{AttrDef, KindDef};

pub const DOMAIN: &str = "domain";

pub const DEF: KindDef = KindDef {
    name: "eip",
    attrs: &[AttrDef::new(DOMAIN).replace(), AttrDef::TAGS],
    ..KindDef::AWS
};
