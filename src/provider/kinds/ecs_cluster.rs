//! The ECS cluster. CreateCluster is idempotent by name (an ACTIVE cluster of that name is
//! returned as it is): the SDK's retries after a lost answer make no second one. Read with the
//! stack's services and task definitions (`ecs.rs`).

use aws_sdk_ecs::types::{ClusterSetting, ClusterSettingName};
use serde_json::Value;

use super::super::ecs::{ecs_tags, sync_ecs_tags};
use super::super::{Aws, Found, already, attr, aws_err, changed, retry_codes};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::ecs_cluster::{CONTAINER_INSIGHTS, NAME};
use crate::model::{Attrs, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct EcsCluster;

fn insights(attrs: &Attrs) -> ClusterSetting {
    ClusterSetting::builder()
        .name(ClusterSettingName::ContainerInsights)
        .value(
            attrs
                .get(CONTAINER_INSIGHTS)
                .and_then(Value::as_str)
                .unwrap_or("disabled"),
        )
        .build()
}

impl Resource for EcsCluster {
    /// The cluster, its services and their task definitions, read together.
    async fn discover(&self, aws: &Aws, spec: &Spec) -> Result<Found, ProviderError> {
        aws.discover_ecs(spec).await
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        let (attrs, tags) = (c.attrs, c.tags);
        let name = attr(attrs, NAME)?;
        // CreateCluster is idempotent by name (an ACTIVE cluster of that name is
        // returned as it is): the SDK's retries after a lost answer make no second one.
        let out = aws
            .ecs
            .create_cluster()
            .cluster_name(name)
            .settings(insights(attrs))
            .set_tags(Some(ecs_tags(tags)))
            .send()
            .await
            .map_err(|e| aws_err("CreateCluster", e))?;
        let arn = out
            .cluster()
            .and_then(|c| c.cluster_arn())
            .unwrap_or_default()
            .to_string();
        Ok(Outputs::from([
            ("id".into(), arn.clone()),
            ("arn".into(), arn),
            (NAME.into(), name.into()),
        ]))

    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        let (attrs, o) = (u.attrs, u.observed);
        if changed(attrs, o, CONTAINER_INSIGHTS) {
            aws.ecs
                .update_cluster()
                .cluster(&o.id)
                .settings(insights(attrs))
                .send()
                .await
                .map_err(|e| aws_err("UpdateCluster", e))?;

        }
        sync_ecs_tags(aws, attrs, o).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        let deadline = aws.settings.deadline;
        retry_codes(
            deadline,
            &[
                "ClusterContainsServicesException",
                "ClusterContainsTasksException",
            ],
            &format!("delete ECS cluster {}", o.id),
            || async {
                aws.ecs
                    .delete_cluster()
                    .cluster(&o.id)
                    .send()
                    .await
                    .map(|_| ())
                    .map(|_| ())
                    .map_err(|e| aws_err("DeleteCluster", e))
                    .or_else(already(&["ClusterNotFoundException"]))
            },
        )
        .await

    }
}
