//! The EventBridge rule that sends the stack's cluster's ECS task state changes to the
//! observer's queue, with that one target. Found by name, owned only when tagged. PutRule
//! creates or replaces the rule of that name and PutTargets sets a target by its id: both do
//! the same when sent again, so a lost answer needs no token. A same-named rule that is not
//! the stack's is a conflict at plan time and never reaches PutRule.

use std::collections::BTreeMap;

use aws_sdk_eventbridge::types::{RuleState, Tag, Target};
use serde_json::{Value, json};

use super::super::{
    Aws, Found, already, attr, aws_err, changed, observed, retry_when, tag_delta, tags_value,
};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::graph::{EVENTS, EVENTS_TARGET_ID, events_rule_name};
use crate::kinds::TAGS;
use crate::kinds::event_rule::{EVENT_PATTERN, NAME, STATE, TARGET_ARN};
use crate::model::{Address, Attrs, Kind, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct EventRule;

const NO_RULE: &[&str] = &["ResourceNotFoundException"];

/// The target ids of the rule, kept in its outputs for the delete (a rule with targets cannot
/// be deleted).
const TARGET_IDS: &str = "target_ids";

fn event_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

fn state(attrs: &Attrs) -> RuleState {
    match attrs.get(STATE).and_then(Value::as_str) {
        Some("DISABLED") => RuleState::Disabled,
        _ => RuleState::Enabled,
    }
}

async fn put_rule(aws: &Aws, attrs: &Attrs, tags: Option<Vec<Tag>>) -> Result<String, ProviderError> {
    let out = aws
        .events
        .put_rule()
        .name(attr(attrs, NAME)?)
        .description("ECS task state changes of the stack's cluster, for the Prefect workers")
        .event_pattern(attrs.get(EVENT_PATTERN).map(Value::to_string).unwrap_or_default())
        .state(state(attrs))
        .set_tags(tags)
        .send()
        .await
        .map_err(|e| aws_err("PutRule", e))?;
    Ok(out.rule_arn().unwrap_or_default().to_owned())
}

async fn put_target(aws: &Aws, attrs: &Attrs) -> Result<(), ProviderError> {
    let name = attr(attrs, NAME)?;
    let target = Target::builder()
        .id(EVENTS_TARGET_ID)
        .arn(attr(attrs, TARGET_ARN)?)
        .build()
        .map_err(|e| ProviderError(format!("PutTargets: {e}")))?;
    let out = aws
        .events
        .put_targets()
        .rule(name)
        .targets(target)
        .send()
        .await
        .map_err(|e| aws_err("PutTargets", e))?;
    if let Some(f) = out.failed_entries().first() {
        return Err(ProviderError(format!(
            "PutTargets: rule {name} refused target {}: {}: {}",
            EVENTS_TARGET_ID,
            f.error_code().unwrap_or("error"),
            f.error_message().unwrap_or_default()
        )));
    }
    Ok(())
}

impl Resource for EventRule {
    async fn discover(&self, aws: &Aws, spec: &Spec) -> Result<Found, ProviderError> {
        let mut found = Found::default();
        let name = events_rule_name(&spec.name);
        let rule = match aws.events.describe_rule().name(&name).send().await {
            Ok(r) => r,
            Err(e) => {
                let e = aws_err("DescribeRule", e);
                return if e.is(NO_RULE) {
                    Ok(found)
                } else {
                    Err(e.into())
                };
            }
        };
        let arn = rule.arn().unwrap_or_default().to_owned();
        let (tags, targets) = tokio::join!(
            aws.events.list_tags_for_resource().resource_arn(&arn).send(),
            aws.events.list_targets_by_rule().rule(&name).send(),
        );
        let tags: BTreeMap<String, String> = tags
            .map_err(|e| aws_err("ListTagsForResource", e))?
            .tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect();
        let address = Address::new(Kind::EventRule, EVENTS);
        if !found.named(aws, address.clone(), format!("EventBridge rule {name}"), &tags) {
            return Ok(found);
        }
        let targets = match targets {
            Ok(t) => t.targets().to_vec(),
            Err(e) => {
                let e = aws_err("ListTargetsByRule", e);
                if !e.is(NO_RULE) {
                    return Err(e.into());
                }
                Vec::new()
            }
        };
        let target = targets
            .iter()
            .find(|t| t.id() == EVENTS_TARGET_ID)
            .map_or(Value::Null, |t| json!(t.arn()));
        let ids: Vec<&str> = targets.iter().map(Target::id).collect();
        let attrs = Attrs::from([
            (NAME.into(), json!(name)),
            (
                EVENT_PATTERN.into(),
                rule.event_pattern()
                    .map(|p| serde_json::from_str(p).unwrap_or_else(|_| json!(p)))
                    .unwrap_or(Value::Null),
            ),
            (
                STATE.into(),
                json!(rule.state().map(RuleState::as_str).unwrap_or("ENABLED")),
            ),
            (TARGET_ARN.into(), target),
            (TAGS.into(), tags_value(&tags)),
        ]);
        found.resources.push(observed(
            address,
            &name,
            &[("arn", &arn), ("name", &name), (TARGET_IDS, &ids.join(","))],
            attrs,
            vec![],
        ));
        Ok(found)
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        let name = attr(c.attrs, NAME)?;
        let arn = put_rule(aws, c.attrs, Some(event_tags(c.tags))).await?;
        put_target(aws, c.attrs).await?;
        Ok(Outputs::from([
            ("id".into(), name.into()),
            ("arn".into(), arn),
            ("name".into(), name.into()),
            (TARGET_IDS.into(), EVENTS_TARGET_ID.into()),
        ]))
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        let o = u.observed;
        if changed(u.attrs, o, EVENT_PATTERN) || changed(u.attrs, o, STATE) {
            // PutRule on an existing rule leaves its tags as they are.
            put_rule(aws, u.attrs, None).await?;
        }
        if changed(u.attrs, o, TARGET_ARN) {
            put_target(aws, u.attrs).await?;
        }
        let arn = o.outputs.get("arn").cloned().unwrap_or_default();
        let (set, remove) = tag_delta(u.attrs, o);
        if !set.is_empty() {
            aws.events
                .tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(event_tags(&set)))
                .send()
                .await
                .map_err(|e| aws_err("TagResource", e))?;
        }
        if !remove.is_empty() {
            aws.events
                .untag_resource()
                .resource_arn(&arn)
                .set_tag_keys(Some(remove))
                .send()
                .await
                .map_err(|e| aws_err("UntagResource", e))?;
        }
        Ok(())
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        let name = o.id.as_str();
        // A rule with targets cannot be deleted: its targets go first, all of them (the rule
        // is the stack's, and so is what it sends).
        let ids: Vec<String> = o
            .outputs
            .get(TARGET_IDS)
            .map(|s| {
                s.split(',')
                    .filter(|i| !i.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        remove_targets(aws, name, ids)
            .await
            .or_else(already(NO_RULE))?;
        // A target added since it was read still holds the rule: read and remove again.
        retry_when(
            aws.settings.deadline,
            has_targets,
            &format!("delete EventBridge rule {name}"),
            || async {
                let deleted = aws
                    .events
                    .delete_rule()
                    .name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_err("DeleteRule", e))
                    .or_else(already(NO_RULE));
                if deleted.as_ref().is_err_and(has_targets) {
                    remove_all_targets(aws, name).await?;
                }
                deleted
            },
        )
        .await
    }

    /// The queue it sends to, found by the target's ARN: deleted after the rule.
    fn uses(&self, o: &Observed, found: &[Observed]) -> Vec<String> {
        let Some(target) = o.attrs.get(TARGET_ARN).and_then(Value::as_str) else {
            return Vec::new();
        };
        found
            .iter()
            .filter(|q| q.address.kind == Kind::SqsQueue)
            .filter(|q| q.outputs.get("arn").map(String::as_str) == Some(target))
            .map(|q| q.id.clone())
            .collect()
    }
}

/// EventBridge's answer to deleting a rule that still has targets.
fn has_targets(e: &super::super::AwsError) -> bool {
    e.is(&["ValidationException"]) && e.message.contains("target")
}

/// Every target the rule has now, removed.
async fn remove_all_targets(aws: &Aws, name: &str) -> Result<(), super::super::AwsError> {
    let targets = aws
        .events
        .list_targets_by_rule()
        .rule(name)
        .send()
        .await
        .map_err(|e| aws_err("ListTargetsByRule", e))?;
    let ids = targets.targets().iter().map(|t| t.id().to_owned()).collect();
    remove_targets(aws, name, ids).await
}

/// Removes the targets `ids` of the rule (none: no call).
async fn remove_targets(
    aws: &Aws,
    name: &str,
    ids: Vec<String>,
) -> Result<(), super::super::AwsError> {
    if ids.is_empty() {
        return Ok(());
    }
    aws.events
        .remove_targets()
        .rule(name)
        .set_ids(Some(ids))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| aws_err("RemoveTargets", e))
}
