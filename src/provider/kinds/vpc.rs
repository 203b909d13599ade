//! The VPC. CreateVpc has no idempotency token: one attempt at a time, looked up by its tags
//! after a failure AWS may have acted on. Its DNS attributes are one call each.

use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName};
use serde_json::{Value, json};

use super::super::ec2::{Scope, at_address, delete_ec2, spec_tags, sync_ec2_tags, tag_map};
use super::super::{Aws, Found, Poll, attr, aws_err, changed, create_untokened, observed, tags_value, wait_until};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::vpc::{CIDR_BLOCK, ENABLE_DNS_HOSTNAMES, ENABLE_DNS_SUPPORT};
use crate::kinds::TAGS;
use crate::model::{Attrs, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct Vpc;

async fn find(aws: &Aws) -> Result<Found, ProviderError> {
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .filters(aws.discovery_filter(Scope::Vpc))
        .send()
        .await
        .map_err(|e| aws_err("DescribeVpcs", e))?;
    let mut list = Vec::new();
    for v in vpcs.vpcs() {
        if let (Some(a), Some(id)) = (v.vpc_id().and_then(|id| aws.ec2_address(v.tags(), id)), v.vpc_id()) {
            list.push((a, id.to_string(), v.cidr_block().unwrap_or_default().to_string(), tag_map(v.tags())));
        }
    }
    // DNS attributes are one call each; the VPCs are read in parallel.
    let dns = futures::future::join_all(list.iter().map(|(_, id, _, _)| vpc_dns(aws, id))).await;
    let mut found = Found::default();
    for ((a, id, cidr, tags), dns) in list.into_iter().zip(dns) {
        let (support, hostnames) = dns?;
        let attrs = Attrs::from([
            (CIDR_BLOCK.into(), json!(cidr)),
            (ENABLE_DNS_SUPPORT.into(), json!(support)),
            (ENABLE_DNS_HOSTNAMES.into(), json!(hostnames)),
            (TAGS.into(), tags_value(&tags)),
        ]);
        found.resources.push(observed(a, &id, &[], attrs, vec![]));
    }
    Ok(found)
}

async fn vpc_dns(aws: &Aws, id: &str) -> Result<(bool, bool), ProviderError> {
    let (s, h) = tokio::join!(
        aws.ec2
            .describe_vpc_attribute()
            .vpc_id(id)
            .attribute(VpcAttributeName::EnableDnsSupport)
            .send(),
        aws.ec2
            .describe_vpc_attribute()
            .vpc_id(id)
            .attribute(VpcAttributeName::EnableDnsHostnames)
            .send(),
    );
    let s = s.map_err(|e| aws_err("DescribeVpcAttribute", e))?;
    let h = h.map_err(|e| aws_err("DescribeVpcAttribute", e))?;
    Ok((
        s.enable_dns_support().and_then(|v| v.value()).unwrap_or(false),
        h.enable_dns_hostnames().and_then(|v| v.value()).unwrap_or(false),
    ))
}

async fn wait_available(aws: &Aws, id: &str) -> Result<(), ProviderError> {
    wait_until(aws.settings.deadline, &format!("VPC {id} available"), || async {
        let r = aws
            .ec2
            .describe_vpcs()
            .vpc_ids(id)
            .send()
            .await
            .map_err(|e| aws_err("DescribeVpcs", e))?;
        let state = r
            .vpcs()
            .first()
            .and_then(|v| v.state())
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        Ok(if state == "available" {
            Poll::Done
        } else {
            Poll::Pending(state)
        })
    })
    .await
}

/// Sets both DNS attributes; on a `fresh` VPC only those that differ from AWS's defaults for
/// a new VPC (DNS support on, DNS hostnames off).
async fn set_dns(aws: &Aws, id: &str, attrs: &Attrs, fresh: bool) -> Result<(), ProviderError> {
    let want = |k: &str| attrs.get(k).and_then(Value::as_bool).unwrap_or(false);
    let on = |v: bool| AttributeBooleanValue::builder().value(v).build();
    let (support, hostnames) = (want(ENABLE_DNS_SUPPORT), want(ENABLE_DNS_HOSTNAMES));
    // AWS takes one attribute per call; the two calls can overlap.
    let set_support = async {
        if fresh && support {
            return Ok(());
        }
        aws.ec2
            .modify_vpc_attribute()
            .vpc_id(id)
            .enable_dns_support(on(support))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_err("ModifyVpcAttribute", e))
    };
    let set_hostnames = async {
        if fresh && !hostnames {
            return Ok(());
        }
        aws.ec2
            .modify_vpc_attribute()
            .vpc_id(id)
            .enable_dns_hostnames(on(hostnames))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_err("ModifyVpcAttribute", e))
    };
    let (a, b) = tokio::join!(set_support, set_hostnames);
    a?;
    b?;
    Ok(())
}

impl Resource for Vpc {
    async fn discover(&self, aws: &Aws, _: &Spec) -> Result<Found, ProviderError> {
        find(aws).await
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        let cidr = attr(c.attrs, CIDR_BLOCK)?;
        let (id, available) = create_untokened(
            &c.address.to_string(),
            || async {
                let out = aws
                    .ec2
                    .create_vpc()
                    .cidr_block(cidr)
                    .tag_specifications(spec_tags(ResourceType::Vpc, c.tags))
                    .customize()
                    .config_override(once!(aws_sdk_ec2))
                    .send()
                    .await
                    .map_err(|e| aws_err("CreateVpc", e))?;
                let vpc = out.vpc();
                let id = vpc.and_then(|v| v.vpc_id()).unwrap_or_default().to_string();
                // The create's own answer says whether the VPC is usable yet: no describe
                // when it already is.
                let available = vpc.and_then(|v| v.state()).map(|s| s.as_str()) == Some("available");
                Ok((id, available))
            },
            || async { Ok(at_address(find(aws).await?, c.address).map(|id| (id, false))) },
        )
        .await?;
        if !available {
            wait_available(aws, &id).await?;
        }
        set_dns(aws, &id, c.attrs, true).await?;
        Ok(Outputs::from([("id".into(), id)]))
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        let o = u.observed;
        if changed(u.attrs, o, ENABLE_DNS_SUPPORT) || changed(u.attrs, o, ENABLE_DNS_HOSTNAMES) {
            set_dns(aws, &o.id, u.attrs, false).await?;
        }
        sync_ec2_tags(aws, u.attrs, o).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        delete_ec2(aws, o, || async {
            aws.ec2
                .delete_vpc()
                .vpc_id(&o.id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_err("DeleteVpc", e))
                .or_else(super::super::already(&["InvalidVpcID.NotFound"]))
        })
        .await
    }
}
