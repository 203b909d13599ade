//! An Elastic IP, a NAT gateway's public address. AllocateAddress has no idempotency token:
//! one attempt at a time, looked up by its tags after a failure AWS may have acted on.

use aws_sdk_ec2::types::{DomainType, ResourceType};
use serde_json::json;

use super::super::ec2::{Scope, at_address, delete_ec2, spec_tags, sync_ec2_tags, tag_map};
use super::super::{Aws, Found, aws_err, create_untokened, observed, tags_value};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::TAGS;
use crate::kinds::eip::DOMAIN;
use crate::model::{Attrs, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct Eip;

async fn find(aws: &Aws) -> Result<Found, ProviderError> {
    let eips = aws
        .ec2
        .describe_addresses()
        .filters(aws.discovery_filter(Scope::Account))
        .send()
        .await
        .map_err(|e| aws_err("DescribeAddresses", e))?;
    let mut found = Found::default();
    for e in eips.addresses() {
        let (Some(a), Some(id)) = (e.allocation_id().and_then(|id| aws.ec2_address(e.tags(), id)), e.allocation_id()) else {
            continue;
        };
        let domain = e.domain().map(|d| d.as_str().to_string());
        let attrs = Attrs::from([
            (DOMAIN.into(), json!(domain)),
            (TAGS.into(), tags_value(&tag_map(e.tags()))),
        ]);
        let mut o = observed(a, id, &[], attrs, vec![]);
        if let Some(assoc) = e.association_id() {
            o.outputs.insert("association_id".into(), assoc.into());
        }
        found.resources.push(o);
    }
    Ok(found)
}

impl Resource for Eip {
    async fn discover(&self, aws: &Aws, _: &Spec) -> Result<Found, ProviderError> {
        find(aws).await
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        let id = create_untokened(
            &c.address.to_string(),
            || async {
                let out = aws
                    .ec2
                    .allocate_address()
                    .domain(DomainType::Vpc)
                    .tag_specifications(spec_tags(ResourceType::ElasticIp, c.tags))
                    .customize()
                    .config_override(once!(aws_sdk_ec2))
                    .send()
                    .await
                    .map_err(|e| aws_err("AllocateAddress", e))?;
                Ok(out.allocation_id().unwrap_or_default().to_string())
            },
            || async { Ok(at_address(find(aws).await?, c.address)) },
        )
        .await?;
        Ok(Outputs::from([("id".into(), id)]))
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        sync_ec2_tags(aws, u.attrs, u.observed).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        delete_ec2(aws, o, || async {
            aws.ec2
                .release_address()
                .allocation_id(&o.id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_err("ReleaseAddress", e))
                .or_else(super::super::already(&["InvalidAllocationID.NotFound"]))
        })
        .await
    }
}
