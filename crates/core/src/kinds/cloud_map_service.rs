//! A Cloud Map service in the namespace: a worker's DNS name.
use super::{AttrDef, KindDef};

pub const NAME: &str = "name";
pub const NAMESPACE_ID: &str = "namespace_id";
pub const DNS_RECORDS: &str = "dns_records";

pub const DEF: KindDef = KindDef {
    name: "service_discovery_service",
    attrs: &[
        AttrDef::new(NAME).replace(),
        AttrDef::new(NAMESPACE_ID).replace(),
        AttrDef::new(DNS_RECORDS).replace(),
        AttrDef::TAGS,
    ],
    ..KindDef::AWS
};
