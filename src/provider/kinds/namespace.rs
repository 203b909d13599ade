//! The private DNS namespace in Cloud Map. CreatePrivateDnsNamespace takes a creator request
//! id; it is an asynchronous operation, waited for. Read with its services (`cloud_map.rs`).

use std::collections::BTreeMap;


use super::super::{Aws, Found, attr, aws_err, request_token, retry_codes};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::namespace::{NAME, VPC_ID};
use crate::model::{Attrs, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct Namespace;

async fn create_namespace(aws: &Aws, attrs: &Attrs,
    tags: &BTreeMap<String, String>,
) -> Result<Outputs, ProviderError> {
    let name = attr(attrs, NAME)?;
    let vpc = attr(attrs, VPC_ID)?;
    let out = aws
        .sd
        .create_private_dns_namespace()
        .name(name)
        .vpc(vpc)
        .description(format!(
            "prefect-ecs stack {} in vpc {vpc}",
            aws.settings.stack
        ))
        .creator_request_id(request_token())
        .set_tags(Some(Aws::sd_tag_list(tags)))
        .send()
        .await
        .map_err(|e| aws_err("CreatePrivateDnsNamespace", e))?;
    let op = out.operation_id().unwrap_or_default();
    let targets = aws
        .sd_operation(op, &format!("Cloud Map namespace {name}"))
        .await?;
    let id = targets.get("NAMESPACE").cloned().ok_or_else(|| {
        ProviderError(format!(
            "Cloud Map namespace {name}: operation {op} named no namespace"
        ))
    })?;
    let ns = aws
        .sd
        .get_namespace()
        .id(&id)
        .send()
        .await
        .map_err(|e| aws_err("GetNamespace", e))?;
    let arn = ns
        .namespace()
        .and_then(|n| n.arn())
        .unwrap_or_default()
        .to_string();
    Ok(Outputs::from([
        ("id".into(), id),
        ("arn".into(), arn),
        (NAME.into(), name.into()),
    ]))
}

async fn delete_namespace(aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
    let what = format!("delete Cloud Map namespace {}", o.id);
    let out = retry_codes(
        aws.settings.deadline,
        &["ResourceInUse"],
        &what,
        || async {
            aws.sd
                .delete_namespace()
                .id(&o.id)
                .send()
                .await
                .map(|out| out.operation_id().map(str::to_owned))
                .map_err(|e| aws_err("DeleteNamespace", e))
                // Sent again after its answer was lost: gone already.
                .or_else(|e| {
                    if e.is(&["NamespaceNotFound"]) {
                        Ok(None)
                    } else {
                        Err(e)
                    }
                })
        },
    )
    .await?;
    if let Some(op) = out {
        aws.sd_operation(&op, &what).await?;
    }
    Ok(())
}

impl Resource for Namespace {
    /// The namespace and its services, read together.
    async fn discover(&self, aws: &Aws, spec: &Spec) -> Result<Found, ProviderError> {
        aws.discover_cloud_map(spec).await
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        create_namespace(aws, c.attrs, c.tags).await
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        aws.update_cloud_map_tags(u.attrs, u.observed).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        delete_namespace(aws, o).await
    }
}
