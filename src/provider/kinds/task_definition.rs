//! A worker's task definition. RegisterTaskDefinition has no idempotency token: one attempt
//! at a time, and after a failure AWS may have acted on, the family's revisions registered
//! since are looked for by this address before it is sent again. Read with the cluster
//! (`ecs.rs`).

use std::collections::BTreeMap;

use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, HealthCheck, KeyValuePair, LogConfiguration, LogDriver,
    NetworkMode, Secret,
};
use serde_json::Value;

use super::super::ecs::{ecs_tags, retry_iam_propagation, sync_ecs_tags};
use super::super::{Aws, AwsError, Found, attr, attr_strings, aws_err, create_untokened};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::task_definition::{
    ARM64, CONTAINER, CPU, CPU_ARCHITECTURE, EXECUTION_ROLE_ARN, FAMILY, MEMORY, TASK_ROLE_ARN,
};
use crate::model::{Attrs, Observed, Outputs, TAG_ADDRESS, TAG_SPEC, TAG_STACK};
use crate::spec::Spec;

pub(super) struct TaskDefinition;

/// The container health check as ECS takes it; `None` when the spec has none.
fn health_check(v: &Value) -> Result<Option<HealthCheck>, ProviderError> {
    if v.is_null() {
        return Ok(None);
    }
    let n = |k: &str| v[k].as_i64().map(|x| x as i32);
    HealthCheck::builder()
        .set_command(Some(attr_strings(v.get("command"))))
        .set_interval(n("interval"))
        .set_timeout(n("timeout"))
        .set_retries(n("retries"))
        .set_start_period(n("start_period"))
        .build()
        .map(Some)
        .map_err(|e| ProviderError(e.to_string()))
}

async fn register_task_definition(aws: &Aws, attrs: &Attrs,
    tags: &BTreeMap<String, String>,
) -> Result<String, ProviderError> {
    let c = attrs.get(CONTAINER).cloned().unwrap_or(Value::Null);
    let pairs = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["name"].as_str().unwrap_or_default().to_string(),
                    e["value"]
                        .as_str()
                        .or(e["value_from"].as_str())
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    };
    let options: BTreeMap<String, String> = c["log_configuration"]["options"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let container = ContainerDefinition::builder()
        .name(c["name"].as_str().unwrap_or("worker"))
        .image(c["image"].as_str().unwrap_or_default())
        .essential(c["essential"].as_bool().unwrap_or(true))
        .set_command(Some(attr_strings(c.get("command"))))
        .set_environment(Some(
            pairs(&c["environment"])
                .into_iter()
                .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
                .collect(),
        ))
        .set_secrets(Some(
            pairs(&c["secrets"])
                .into_iter()
                .filter_map(|(k, v)| Secret::builder().name(k).value_from(v).build().ok())
                .collect(),
        ))
        .set_health_check(health_check(&c["health_check"])?)
        .set_stop_timeout(c["stop_timeout"].as_i64().map(|t| t as i32))
        .log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::from(
                    c["log_configuration"]["driver"]
                        .as_str()
                        .unwrap_or("awslogs"),
                ))
                .set_options(Some(options.into_iter().collect()))
                .build()
                .map_err(|e| ProviderError(e.to_string()))?,
        )
        .build();
    let family = attr(attrs, FAMILY).unwrap_or_default();
    let since = aws_sdk_ecs::primitives::DateTime::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64
            // Clock skew between this machine and AWS.
            - 300,
    );
    // No idempotency token: every call registers a revision. Sent once at a time; after a
    // failure AWS may have acted on, the family's latest revision is ours when it carries
    // this address and spec digest and was registered since this create began.
    let what = format!("task definition {family}");
    retry_iam_propagation(aws, || {
        create_untokened(
            &what,
            || register_once(aws, attrs, tags, &container),
            || registered_since(aws, family, tags, since),
        )
    })
    .await
}

async fn registered_since(aws: &Aws, family: &str,
    tags: &BTreeMap<String, String>,
    since: aws_sdk_ecs::primitives::DateTime,
) -> Result<Option<String>, ProviderError> {
    let out = aws
        .ecs
        .describe_task_definition()
        .task_definition(family)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(|e| aws_err("DescribeTaskDefinition", e));
    let out = match out {
        Ok(o) => o,
        Err(e) if e.is(&["ClientException", "InvalidParameterException"]) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let found: BTreeMap<&str, &str> = out
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?, t.value()?)))
        .collect();
    let same = [TAG_STACK, TAG_ADDRESS, TAG_SPEC]
        .iter()
        .all(|k| found.get(k).copied() == tags.get(*k).map(String::as_str));
    let td = out.task_definition();
    let recent = td
        .and_then(|t| t.registered_at())
        .is_none_or(|at| at.secs() >= since.secs());
    Ok(td
        .filter(|_| same && recent)
        .and_then(|t| t.task_definition_arn())
        .map(str::to_owned))
}

async fn register_once(aws: &Aws, attrs: &Attrs,
    tags: &BTreeMap<String, String>,
    container: &ContainerDefinition,
) -> Result<String, AwsError> {
    let out = aws
        .ecs
        .register_task_definition()
        .family(attr(attrs, FAMILY).unwrap_or_default())
        .cpu(attr(attrs, CPU).unwrap_or_default())
        .memory(attr(attrs, MEMORY).unwrap_or_default())
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .execution_role_arn(attr(attrs, EXECUTION_ROLE_ARN).unwrap_or_default())
        .task_role_arn(attr(attrs, TASK_ROLE_ARN).unwrap_or_default())
        .container_definitions(container.clone())
        // x86 is Fargate's default: only ARM is said (a revision without it reads as x86).
        .set_runtime_platform(
            (attr(attrs, CPU_ARCHITECTURE).ok() == Some(ARM64)).then(|| {
                aws_sdk_ecs::types::RuntimePlatform::builder()
                    .cpu_architecture(aws_sdk_ecs::types::CpuArchitecture::Arm64)
                    .operating_system_family(aws_sdk_ecs::types::OsFamily::Linux)
                    .build()
            }),
        )
        .set_tags(Some(ecs_tags(tags)))
        .customize()
        .config_override(once!(aws_sdk_ecs))
        .send()
        .await
        .map_err(|e| aws_err("RegisterTaskDefinition", e))?;
    Ok(out
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .unwrap_or_default()
        .to_string())
}

impl Resource for TaskDefinition {
    async fn discover(&self, _: &Aws, _: &Spec) -> Result<Found, ProviderError> {
        // Read with the cluster and its services: `EcsCluster::discover`.
        Ok(Found::default())
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        let (attrs, tags) = (c.attrs, c.tags);
        let arn = register_task_definition(aws, attrs, tags).await?;
        Ok(Outputs::from([
            ("id".into(), arn.clone()),
            ("arn".into(), arn),
        ]))

    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        sync_ecs_tags(aws, u.attrs, u.observed).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        aws.ecs
            .deregister_task_definition()
            .task_definition(&o.id)
            .send()
            .await
            .map_err(|e| aws_err("DeregisterTaskDefinition", e))?;
        Ok(())

    }
}
