//! A subnet. CreateSubnet has no idempotency token: one attempt at a time, looked up by its
//! tags after a failure AWS may have acted on.

use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};
use serde_json::json;

use super::super::ec2::{Scope, at_address, delete_ec2, spec_tags, sync_ec2_tags, tag_map};
use super::super::{Aws, Found, attr, aws_err, changed, create_untokened, observed, tags_value};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::TAGS;
use crate::kinds::subnet::{AVAILABILITY_ZONE, CIDR_BLOCK, MAP_PUBLIC_IP_ON_LAUNCH, VPC_ID};
use crate::model::{Attrs, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct Subnet;

async fn find(aws: &Aws) -> Result<Found, ProviderError> {
    let subnets = aws
        .ec2
        .describe_subnets()
        .filters(aws.discovery_filter(Scope::Vpc))
        .send()
        .await
        .map_err(|e| aws_err("DescribeSubnets", e))?;
    let mut found = Found::default();
    for s in subnets.subnets() {
        let (Some(a), Some(id)) = (s.subnet_id().and_then(|id| aws.ec2_address(s.tags(), id)), s.subnet_id()) else {
            continue;
        };
        let vpc = s.vpc_id().unwrap_or_default();
        let attrs = Attrs::from([
            (VPC_ID.into(), json!(vpc)),
            (CIDR_BLOCK.into(), json!(s.cidr_block())),
            (AVAILABILITY_ZONE.into(), json!(s.availability_zone())),
            (
                MAP_PUBLIC_IP_ON_LAUNCH.into(),
                json!(s.map_public_ip_on_launch().unwrap_or(false)),
            ),
            (TAGS.into(), tags_value(&tag_map(s.tags()))),
        ]);
        found
            .resources
            .push(observed(a, id, &[], attrs, vec![vpc.into()]));
    }
    Ok(found)
}

async fn set_map_public_ip(aws: &Aws, id: &str, on: bool) -> Result<(), ProviderError> {
    aws.ec2
        .modify_subnet_attribute()
        .subnet_id(id)
        .map_public_ip_on_launch(AttributeBooleanValue::builder().value(on).build())
        .send()
        .await
        .map_err(|e| aws_err("ModifySubnetAttribute", e))?;
    Ok(())
}

impl Resource for Subnet {
    async fn discover(&self, aws: &Aws, _: &Spec) -> Result<Found, ProviderError> {
        find(aws).await
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        let (vpc, cidr, az) = (
            attr(c.attrs, VPC_ID)?,
            attr(c.attrs, CIDR_BLOCK)?,
            attr(c.attrs, AVAILABILITY_ZONE)?,
        );
        let id = create_untokened(
            &c.address.to_string(),
            || async {
                let out = aws
                    .ec2
                    .create_subnet()
                    .vpc_id(vpc)
                    .cidr_block(cidr)
                    .availability_zone(az)
                    .tag_specifications(spec_tags(ResourceType::Subnet, c.tags))
                    .customize()
                    .config_override(once!(aws_sdk_ec2))
                    .send()
                    .await
                    .map_err(|e| aws_err("CreateSubnet", e))?;
                Ok(out
                    .subnet()
                    .and_then(|s| s.subnet_id())
                    .unwrap_or_default()
                    .to_string())
            },
            || async { Ok(at_address(find(aws).await?, c.address)) },
        )
        .await?;
        if c.attrs.get(MAP_PUBLIC_IP_ON_LAUNCH) == Some(&json!(true)) {
            set_map_public_ip(aws, &id, true).await?;
        }
        Ok(Outputs::from([("id".into(), id)]))
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        let o = u.observed;
        if changed(u.attrs, o, MAP_PUBLIC_IP_ON_LAUNCH) {
            let on = u.attrs.get(MAP_PUBLIC_IP_ON_LAUNCH) == Some(&json!(true));
            set_map_public_ip(aws, &o.id, on).await?;
        }
        sync_ec2_tags(aws, u.attrs, o).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        delete_ec2(aws, o, || async {
            aws.ec2
                .delete_subnet()
                .subnet_id(&o.id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_err("DeleteSubnet", e))
                .or_else(super::super::already(&["InvalidSubnetID.NotFound"]))
        })
        .await
    }
}
