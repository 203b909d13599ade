//! The queue the workers' observer reads the cluster's task state changes from: found by its
//! name (GetQueueUrl), owned only when tagged, read together with its resource policy
//! (`sqs_queue_policy.rs`). CreateQueue answers the existing queue when the name and every
//! attribute match, so a create sent again after a lost answer returns the first queue; the
//! queue's tags then say whether it is this stack's, and a same-named queue of anyone else is
//! refused, not adopted.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};

use super::super::{
    Aws, Found, already, attr, aws_err, changed, observed, retry_when, tag_delta, tags_value,
};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::graph::{EVENTS, events_queue_name};
use crate::kinds::TAGS;
use crate::kinds::sqs_queue::{MESSAGE_RETENTION_PERIOD, NAME};
use crate::kinds::sqs_queue_policy as policy;
use crate::model::{Address, Attrs, Kind, Observed, Outputs, TAG_ADDRESS, TAG_STACK};
use crate::spec::Spec;

pub(super) struct SqsQueue;

/// SQS's "no such queue", as the JSON protocol and the query-compatible header spell it.
pub(super) const NO_QUEUE: &[&str] = &[
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
];

/// "Wait 60 s after deleting a queue before you create one with the same name."
const DELETED_RECENTLY: &[&str] = &[
    "QueueDeletedRecently",
    "AWS.SimpleQueueService.QueueDeletedRecently",
];

/// A queue as read: its URL, ARN, attributes and tags.
struct Read {
    url: String,
    attributes: HashMap<QueueAttributeName, String>,
    tags: BTreeMap<String, String>,
}

/// The queue named `name`, if it exists: its URL, then its attributes and tags at once.
async fn read(aws: &Aws, name: &str) -> Result<Option<Read>, ProviderError> {
    let url = match aws.sqs.get_queue_url().queue_name(name).send().await {
        Ok(r) => r.queue_url().unwrap_or_default().to_owned(),
        Err(e) => {
            let e = aws_err("GetQueueUrl", e);
            return if e.is(NO_QUEUE) {
                Ok(None)
            } else {
                Err(e.into())
            };
        }
    };
    let (attributes, tags) = tokio::join!(
        aws.sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send(),
        aws.sqs.list_queue_tags().queue_url(&url).send(),
    );
    // Deleted between the calls: gone.
    let attributes = match attributes {
        Ok(a) => a.attributes().cloned().unwrap_or_default(),
        Err(e) => {
            let e = aws_err("GetQueueAttributes", e);
            return if e.is(NO_QUEUE) {
                Ok(None)
            } else {
                Err(e.into())
            };
        }
    };
    let tags = tags
        .map_err(|e| aws_err("ListQueueTags", e))?
        .tags()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok(Some(Read {
        url,
        attributes,
        tags,
    }))
}

fn number(attributes: &HashMap<QueueAttributeName, String>, name: QueueAttributeName) -> Value {
    attributes
        .get(&name)
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Value::Null, |n| json!(n))
}

fn outputs(name: &str, url: &str, arn: &str) -> Outputs {
    Outputs::from([
        ("id".into(), url.into()),
        ("url".into(), url.into()),
        ("arn".into(), arn.into()),
        ("name".into(), name.into()),
    ])
}

impl Resource for SqsQueue {
    async fn discover(&self, aws: &Aws, spec: &Spec) -> Result<Found, ProviderError> {
        let mut found = Found::default();
        let name = events_queue_name(&spec.name);
        let Some(q) = read(aws, &name).await? else {
            return Ok(found);
        };
        let address = Address::new(Kind::SqsQueue, EVENTS);
        if !found.named(aws, address.clone(), format!("SQS queue {name}"), &q.tags) {
            return Ok(found);
        }
        let arn = q
            .attributes
            .get(&QueueAttributeName::QueueArn)
            .cloned()
            .unwrap_or_default();
        let attrs = Attrs::from([
            (NAME.into(), json!(name)),
            (
                MESSAGE_RETENTION_PERIOD.into(),
                number(&q.attributes, QueueAttributeName::MessageRetentionPeriod),
            ),
            (TAGS.into(), tags_value(&q.tags)),
        ]);
        let out = outputs(&name, &q.url, &arn);
        let mut queue = observed(address, &q.url, &[], attrs, vec![]);
        queue.outputs = out;
        // The policy is an attribute of the queue: the stack's when its queue is.
        if let Some(doc) = q
            .attributes
            .get(&QueueAttributeName::Policy)
            .filter(|d| !d.is_empty())
        {
            found.resources.push(observed(
                Address::new(Kind::SqsQueuePolicy, EVENTS),
                format!("{}#policy", q.url),
                &[],
                Attrs::from([
                    (policy::QUEUE_URL.into(), json!(q.url)),
                    (
                        policy::DOCUMENT.into(),
                        serde_json::from_str(doc).unwrap_or_else(|_| json!(doc)),
                    ),
                ]),
                vec![q.url.clone()],
            ));
        }
        found.resources.push(queue);
        Ok(found)
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        let name = attr(c.attrs, NAME)?;
        let retention = c
            .attrs
            .get(MESSAGE_RETENTION_PERIOD)
            .and_then(Value::as_u64)
            .map(|n| n.to_string());
        // A queue deleted less than a minute ago keeps its name that long.
        let created = retry_when(
            aws.settings.deadline,
            |e| e.is(DELETED_RECENTLY),
            &format!("create SQS queue {name}"),
            || async {
                aws.sqs
                    .create_queue()
                    .queue_name(name)
                    .set_attributes(retention.as_ref().map(|r| {
                        HashMap::from([(QueueAttributeName::MessageRetentionPeriod, r.clone())])
                    }))
                    .set_tags(Some(c.tags.clone().into_iter().collect()))
                    .send()
                    .await
                    .map_err(|e| aws_err("CreateQueue", e))
            },
        )
        .await?;
        let url = created.queue_url().unwrap_or_default().to_owned();
        let (attributes, tags) = tokio::join!(
            aws.sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send(),
            aws.sqs.list_queue_tags().queue_url(&url).send(),
        );
        // CreateQueue hands back a same-named queue whose attributes match: it is ours only
        // when it carries this address (sent again after a lost answer), never someone else's.
        let tags = tags.map_err(|e| aws_err("ListQueueTags", e))?;
        let tags = tags.tags().cloned().unwrap_or_default();
        for key in [TAG_STACK, TAG_ADDRESS] {
            if tags.get(key) != c.tags.get(key) {
                return Err(ProviderError(format!(
                    "SQS queue {name} exists and is not this stack's ({key} is {}): rename \
                     the stack or delete that queue",
                    tags.get(key).map_or("unset".into(), |v| format!("\"{v}\""))
                )));
            }
        }
        let arn = attributes
            .map_err(|e| aws_err("GetQueueAttributes", e))?
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap_or_default();
        Ok(outputs(name, &url, &arn))
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        let url = &u.observed.id;
        if changed(u.attrs, u.observed, MESSAGE_RETENTION_PERIOD)
            && let Some(r) = u.attrs.get(MESSAGE_RETENTION_PERIOD).and_then(Value::as_u64)
        {
            aws.sqs
                .set_queue_attributes()
                .queue_url(url)
                .attributes(QueueAttributeName::MessageRetentionPeriod, r.to_string())
                .send()
                .await
                .map_err(|e| aws_err("SetQueueAttributes", e))?;
        }
        let (set, remove) = tag_delta(u.attrs, u.observed);
        if !set.is_empty() {
            aws.sqs
                .tag_queue()
                .queue_url(url)
                .set_tags(Some(set.into_iter().collect()))
                .send()
                .await
                .map_err(|e| aws_err("TagQueue", e))?;
        }
        if !remove.is_empty() {
            aws.sqs
                .untag_queue()
                .queue_url(url)
                .set_tag_keys(Some(remove))
                .send()
                .await
                .map_err(|e| aws_err("UntagQueue", e))?;
        }
        Ok(())
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        aws.sqs
            .delete_queue()
            .queue_url(&o.id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_err("DeleteQueue", e))
            .or_else(already(NO_QUEUE))?;
        Ok(())
    }
}
