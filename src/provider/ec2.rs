//! What the EC2 kinds (`kinds/vpc.rs` … `kinds/security_group.rs`) share: they are found by
//! the stack's tag filter (one call per kind, all in parallel) and always re-checked
//! client-side, tagged in the create call, and deleted through AWS's "still in use" answers.

use std::collections::BTreeMap;
use std::future::Future;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use super::{Aws, AwsError, Found, Ownership, aws_err, retry_codes, tag_delta};
use crate::apply::ProviderError;
use crate::model::{Address, Attrs, Observed, TAG_STACK};

/// AWS's "still in use" answers: retried until the user of the resource is gone.
const IN_USE: &[&str] = &["DependencyViolation", "InvalidIPAddress.InUse"];

pub(super) fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

pub(super) fn spec_tags(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

/// The id of the resource found at `address`: what a create whose answer was lost may have
/// made. Looked for only after a failed create, so rare.
pub(super) fn at_address(found: Found, address: &Address) -> Option<String> {
    found
        .resources
        .into_iter()
        .find(|o| &o.address == address)
        .map(|o| o.id)
}

/// A delete (or detach) retried while AWS says the resource is still in use.
pub(super) async fn delete_ec2<F, Fut>(aws: &Aws, o: &Observed, op: F) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), AwsError>>,
{
    let what = format!("delete {} ({})", o.address, o.id);
    retry_codes(aws.settings.deadline, IN_USE, &what, op).await
}

pub(super) async fn sync_ec2_tags(
    aws: &Aws,
    attrs: &Attrs,
    o: &Observed,
) -> Result<(), ProviderError> {
    let (set, remove) = tag_delta(attrs, o);
    if !set.is_empty() {
        aws.ec2
            .create_tags()
            .resources(&o.id)
            .set_tags(Some(
                set.iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| aws_err("CreateTags", e))?;
    }
    if !remove.is_empty() {
        aws.ec2
            .delete_tags()
            .resources(&o.id)
            .set_tags(Some(
                remove
                    .iter()
                    .map(|k| Tag::builder().key(k).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| aws_err("DeleteTags", e))?;
    }
    Ok(())
}

impl Aws {
    pub(super) fn stack_filter(&self) -> Filter {
        Filter::builder()
            .name(format!("tag:{TAG_STACK}"))
            .values(&self.settings.stack)
            .build()
    }

    /// The address of an EC2 resource if it is this stack's (tag filters are not trusted alone).
    pub(super) fn ec2_address(&self, tags: &[Tag]) -> Option<Address> {
        match self.ownership(&tag_map(tags)) {
            Ownership::Ours(a) => Some(a),
            Ownership::Foreign(_) => None,
        }
    }
}
