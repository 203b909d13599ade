//! The queue's resource policy: EventBridge's rule of this stack may send to it. An attribute
//! of the queue in SQS, without tags: the stack's when its queue is, and read with it
//! (`sqs_queue.rs`). SetQueueAttributes replaces the whole document: sent again, it does the
//! same.

use aws_sdk_sqs::types::QueueAttributeName;

use super::super::iam::document;
use super::super::{Aws, Found, already, attr, aws_err};
use super::sqs_queue::NO_QUEUE;
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::sqs_queue_policy::{DOCUMENT, QUEUE_URL};
use crate::model::{Attrs, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct SqsQueuePolicy;

async fn set(aws: &Aws, url: &str, doc: String) -> Result<(), super::super::AwsError> {
    aws.sqs
        .set_queue_attributes()
        .queue_url(url)
        .attributes(QueueAttributeName::Policy, doc)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| aws_err("SetQueueAttributes", e))
}

async fn put(aws: &Aws, attrs: &Attrs) -> Result<(), ProviderError> {
    Ok(set(aws, attr(attrs, QUEUE_URL)?, document(attrs, DOCUMENT)).await?)
}

impl Resource for SqsQueuePolicy {
    async fn discover(&self, _: &Aws, _: &Spec) -> Result<Found, ProviderError> {
        // Read with its queue, whose ownership it shares: `SqsQueue::discover`.
        Ok(Found::default())
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        put(aws, c.attrs).await?;
        Ok(Outputs::new())
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        put(aws, u.attrs).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        // An empty policy is none; a queue already gone has none either.
        set(aws, attr(&o.attrs, QUEUE_URL)?, String::new())
            .await
            .or_else(already(NO_QUEUE))?;
        Ok(())
    }
}
