//! The workers' CloudWatch Logs group: found by name, owned only when tagged. CreateLogGroup
//! has no token, but a group's name is unique: "already exists" is ours only when the group
//! carries this address.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::super::{
    Aws, Found, attr, aws_err, changed, observed, tag_delta, tags_value,
};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::TAGS;
use crate::graph::LOG_STREAMS_ARN;
use crate::kinds::log_group::{NAME, RETENTION_IN_DAYS};
use crate::model::{Address, Attrs, Kind, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct LogGroup;

/// The ARN that names every stream of the group (what a policy scoped to it grants on).
fn streams(group_arn: &str) -> String {
    format!("{group_arn}:log-stream:*")
}

/// The log group named exactly `name` and its tags, if it exists.
async fn log_group_named(aws: &Aws, name: &str,
) -> Result<
    Option<(
        aws_sdk_cloudwatchlogs::types::LogGroup,
        BTreeMap<String, String>,
    )>,
    ProviderError,
> {
    let r = aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(name)
        .send()
        .await
        .map_err(|e| aws_err("DescribeLogGroups", e))?;
    let Some(g) = r
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(name))
    else {
        return Ok(None);
    };
    let arn = g.arn().unwrap_or_default().trim_end_matches(":*");
    let t = aws
        .logs
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| aws_err("ListTagsForResource", e))?;
    let tags = t.tags().cloned().unwrap_or_default().into_iter().collect();
    Ok(Some((g.clone(), tags)))
}

async fn discover_log_group(aws: &Aws, spec: &Spec) -> Result<Found, ProviderError> {
    let mut found = Found::default();
    let name = &spec.logs.group;
    let Some((g, tags)) = log_group_named(aws, name).await? else {
        return Ok(found);
    };
    let arn = g
        .arn()
        .unwrap_or_default()
        .trim_end_matches(":*")
        .to_string();
    let address = Address::new(Kind::LogGroup, "workers");
    if !found.named(aws, address.clone(), format!("log group {name}"), &tags) {
        return Ok(found);
    }
    let attrs = Attrs::from([
        (NAME.into(), json!(name)),
        (RETENTION_IN_DAYS.into(), json!(g.retention_in_days())),
        (TAGS.into(), tags_value(&tags)),
    ]);
    let streams = streams(&arn);
    found.resources.push(observed(
        address,
        name,
        &[("arn", &arn), ("name", name), (LOG_STREAMS_ARN, &streams)],
        attrs,
        vec![],
    ));
    Ok(found)
}

async fn create_log_group(aws: &Aws, attrs: &Attrs,
    tags: &BTreeMap<String, String>,
) -> Result<Outputs, ProviderError> {
    let name = attr(attrs, NAME)?;
    let created = aws
        .logs
        .create_log_group()
        .log_group_name(name)
        .set_tags(Some(tags.clone().into_iter().collect()))
        .send()
        .await
        .map_err(|e| aws_err("CreateLogGroup", e));
    // No idempotency token, but a unique name: sent again after a lost answer, AWS says
    // it exists. Ours when it carries this stack's address tag; anyone else's is refused.
    if let Err(e) = created {
        let ours = e.is(&["ResourceAlreadyExistsException"]) && {
            let found = log_group_named(aws, name)
                .await?
                .map(|(_, tags)| tags)
                .unwrap_or_default();
            found.get(crate::model::TAG_ADDRESS) == tags.get(crate::model::TAG_ADDRESS)
                && found.get(crate::model::TAG_STACK) == tags.get(crate::model::TAG_STACK)
        };
        if !ours {
            return Err(e.into());
        }
    }
    // The ARN is only in a describe; it does not wait for the retention.
    let (retention, described) = tokio::join!(
        put_retention(aws, name, attrs),
        aws.logs
            .describe_log_groups()
            .log_group_name_prefix(name)
            .send(),
    );
    retention?;
    let r = described.map_err(|e| aws_err("DescribeLogGroups", e))?;
    let arn = r
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(name))
        .and_then(|g| g.arn())
        .unwrap_or_default()
        .trim_end_matches(":*")
        .to_string();
    Ok(Outputs::from([
        ("id".into(), name.into()),
        (NAME.into(), name.into()),
        (LOG_STREAMS_ARN.into(), streams(&arn)),
        ("arn".into(), arn),
    ]))
}

async fn put_retention(aws: &Aws, name: &str, attrs: &Attrs) -> Result<(), ProviderError> {
    if let Some(days) = attrs.get(RETENTION_IN_DAYS).and_then(Value::as_i64) {
        aws.logs
            .put_retention_policy()
            .log_group_name(name)
            .retention_in_days(days as i32)
            .send()
            .await
            .map_err(|e| aws_err("PutRetentionPolicy", e))?;
    }
    Ok(())
}

async fn update_log_group(aws: &Aws, attrs: &Attrs,
    o: &Observed,
) -> Result<(), ProviderError> {
    if changed(attrs, o, RETENTION_IN_DAYS) {
        put_retention(aws, &o.id, attrs).await?;
    }
    let arn = o.outputs.get("arn").cloned().unwrap_or_default();
    let (set, remove) = tag_delta(attrs, o);
    if !set.is_empty() {
        aws.logs
            .tag_resource()
            .resource_arn(&arn)
            .set_tags(Some(set.into_iter().collect()))
            .send()
            .await
            .map_err(|e| aws_err("TagResource", e))?;
    }
    if !remove.is_empty() {
        aws.logs
            .untag_resource()
            .resource_arn(&arn)
            .set_tag_keys(Some(remove))
            .send()
            .await
            .map_err(|e| aws_err("UntagResource", e))?;
    }
    Ok(())
}

async fn delete_log_group(aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
    match aws
        .logs
        .delete_log_group()
        .log_group_name(&o.id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = aws_err("DeleteLogGroup", e);
            if e.is(&["ResourceNotFoundException"]) {
                Ok(())
            } else {
                Err(e.into())
            }
        }
    }
}

impl Resource for LogGroup {
    async fn discover(&self, aws: &Aws, spec: &Spec) -> Result<Found, ProviderError> {
        discover_log_group(aws, spec).await
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        create_log_group(aws, c.attrs, c.tags).await
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        update_log_group(aws, u.attrs, u.observed).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        delete_log_group(aws, o).await
    }
}
