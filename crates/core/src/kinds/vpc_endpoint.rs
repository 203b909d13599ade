//! A VPC endpoint: a gateway endpoint (S3: a route in the given route tables, free) or an
//! interface endpoint (an ENI in each given subnet behind a security group, private DNS on, so
//! the service's usual name resolves to it inside the VPC). Each type reports only its own
//! attributes: a gateway has no subnets, an interface no route tables.
use super::{AttrDef, KindDef};

pub const VPC_ID: &str = "vpc_id";
/// `com.amazonaws.<region>.<service>`.
pub const SERVICE_NAME: &str = "service_name";
/// `Gateway` or `Interface`.
pub const ENDPOINT_TYPE: &str = "endpoint_type";
pub const ROUTE_TABLE_IDS: &str = "route_table_ids";
pub const SUBNET_IDS: &str = "subnet_ids";
pub const SECURITY_GROUP_IDS: &str = "security_group_ids";
pub const PRIVATE_DNS_ENABLED: &str = "private_dns_enabled";

pub const GATEWAY: &str = "Gateway";
pub const INTERFACE: &str = "Interface";

pub const DEF: KindDef = KindDef {
    name: "vpc_endpoint",
    attrs: &[
        AttrDef::new(VPC_ID).replace(),
        AttrDef::new(SERVICE_NAME).replace(),
        AttrDef::new(ENDPOINT_TYPE).replace(),
        AttrDef::new(ROUTE_TABLE_IDS),
        AttrDef::new(SUBNET_IDS),
        AttrDef::new(SECURITY_GROUP_IDS),
        AttrDef::new(PRIVATE_DNS_ENABLED),
        AttrDef::TAGS,
    ],
    ..KindDef::AWS
};
