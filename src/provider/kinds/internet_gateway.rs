//! The internet gateway, attached to the VPC. CreateInternetGateway has no idempotency token:
//! one attempt at a time, looked up by its tags after a failure AWS may have acted on.

use aws_sdk_ec2::types::ResourceType;
use serde_json::{Value, json};

use super::super::ec2::{Scope, at_address, delete_ec2, spec_tags, sync_ec2_tags, tag_map};
use super::super::{Aws, Found, attr, aws_err, create_untokened, observed, tags_value};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::TAGS;
use crate::kinds::internet_gateway::VPC_ID;
use crate::model::{Attrs, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct InternetGateway;

async fn find(aws: &Aws) -> Result<Found, ProviderError> {
    let igws = aws
        .ec2
        .describe_internet_gateways()
        .filters(aws.discovery_filter(Scope::Attachment))
        .send()
        .await
        .map_err(|e| aws_err("DescribeInternetGateways", e))?;
    let mut found = Found::default();
    for g in igws.internet_gateways() {
        let (Some(a), Some(id)) = (g.internet_gateway_id().and_then(|id| aws.ec2_address(g.tags(), id)), g.internet_gateway_id()) else {
            continue;
        };
        let vpc = g
            .attachments()
            .iter()
            .find_map(|at| at.vpc_id())
            .map(String::from);
        let attrs = Attrs::from([
            (VPC_ID.into(), json!(vpc)),
            (TAGS.into(), tags_value(&tag_map(g.tags()))),
        ]);
        found
            .resources
            .push(observed(a, id, &[], attrs, vpc.into_iter().collect()));
    }
    Ok(found)
}

/// Whether internet gateway `id` is attached to `vpc`.
async fn attached(aws: &Aws, id: &str, vpc: &str) -> Result<bool, ProviderError> {
    let out = aws
        .ec2
        .describe_internet_gateways()
        .internet_gateway_ids(id)
        .send()
        .await
        .map_err(|e| aws_err("DescribeInternetGateways", e))?;
    Ok(out
        .internet_gateways()
        .iter()
        .flat_map(|g| g.attachments())
        .any(|a| a.vpc_id() == Some(vpc)))
}

impl Resource for InternetGateway {
    async fn discover(&self, aws: &Aws, _: &Spec) -> Result<Found, ProviderError> {
        find(aws).await
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        let id = create_untokened(
            &c.address.to_string(),
            || async {
                let out = aws
                    .ec2
                    .create_internet_gateway()
                    .tag_specifications(spec_tags(ResourceType::InternetGateway, c.tags))
                    .customize()
                    .config_override(once!(aws_sdk_ec2))
                    .send()
                    .await
                    .map_err(|e| aws_err("CreateInternetGateway", e))?;
                Ok(out
                    .internet_gateway()
                    .and_then(|g| g.internet_gateway_id())
                    .unwrap_or_default()
                    .to_string())
            },
            || async { Ok(at_address(find(aws).await?, c.address)) },
        )
        .await?;
        let vpc = attr(c.attrs, VPC_ID)?;
        let attach = aws
            .ec2
            .attach_internet_gateway()
            .internet_gateway_id(&id)
            .vpc_id(vpc)
            .send()
            .await
            .map_err(|e| aws_err("AttachInternetGateway", e));
        match attach {
            // An attach whose answer was lost, sent again: attached already, to this VPC.
            Err(e) if e.is(&["Resource.AlreadyAssociated"]) && attached(aws, &id, vpc).await? => {}
            other => {
                other?;
            }
        }
        Ok(Outputs::from([("id".into(), id)]))
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        sync_ec2_tags(aws, u.attrs, u.observed).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        let id = o.id.as_str();
        if let Some(vpc) = o.attrs.get(VPC_ID).and_then(Value::as_str) {
            // Detach fails while a NAT's public address is still mapped in the VPC.
            delete_ec2(aws, o, || async {
                aws.ec2
                    .detach_internet_gateway()
                    .internet_gateway_id(id)
                    .vpc_id(vpc)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_err("DetachInternetGateway", e))
                    .or_else(super::super::already(&["Gateway.NotAttached"]))
            })
            .await?;
        }
        delete_ec2(aws, o, || async {
            aws.ec2
                .delete_internet_gateway()
                .internet_gateway_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_err("DeleteInternetGateway", e))
                .or_else(super::super::already(&["InvalidInternetGatewayID.NotFound"]))
        })
        .await
    }
}
