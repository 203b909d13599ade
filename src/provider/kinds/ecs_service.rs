//! A worker's ECS service: created with a client token (a same-named service still draining
//! makes the create fail for a while), waited for until stable unless `--no-wait`. Read with
//! the cluster (`ecs.rs`).

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, DeploymentCircuitBreaker, DeploymentConfiguration, LaunchType,
    NetworkConfiguration, ServiceRegistry,
};
use serde_json::Value;

use super::super::ecs::{ecs_tags, is_iam_propagation, sync_ecs_tags};
use super::super::{
    Aws, Found, Poll, already, attr, attr_strings, aws_err, changed, request_token, retry_when,
    wait_until,
};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::ecs_service::{
    CLUSTER, DEPLOYMENT_CIRCUIT_BREAKER, DESIRED_COUNT, FORCE_NEW_DEPLOYMENT, NAME, NETWORK,
    SERVICE_REGISTRIES, TASK_DEFINITION,
};
use crate::model::{Attrs, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct EcsService;

/// The Cloud Map services the tasks register in.
fn registries(attrs: &Attrs) -> Vec<ServiceRegistry> {
    attr_strings(attrs.get(SERVICE_REGISTRIES))
        .into_iter()
        .map(|a| ServiceRegistry::builder().registry_arn(a).build())
        .collect()
}

fn network(attrs: &Attrs) -> NetworkConfiguration {
    let n = attrs.get(NETWORK).cloned().unwrap_or(Value::Null);
    NetworkConfiguration::builder()
        .awsvpc_configuration(
            AwsVpcConfiguration::builder()
                .set_subnets(Some(attr_strings(n.get("subnets"))))
                .set_security_groups(Some(attr_strings(n.get("security_groups"))))
                .assign_public_ip(AssignPublicIp::from(
                    n["assign_public_ip"].as_str().unwrap_or("DISABLED"),
                ))
                .build()
                .expect("subnets are set"),
        )
        .build()
}

fn deployment(attrs: &Attrs) -> DeploymentConfiguration {
    let cb = attrs
        .get(DEPLOYMENT_CIRCUIT_BREAKER)
        .cloned()
        .unwrap_or(Value::Null);
    DeploymentConfiguration::builder()
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(cb["enable"].as_bool().unwrap_or(false))
                .rollback(cb["rollback"].as_bool().unwrap_or(false))
                .build(),
        )
        .build()
}

async fn wait_stable(aws: &Aws, cluster: &str,
    service: &str,
    name: &str,
) -> Result<(), ProviderError> {
    if !aws.settings.wait {
        return Ok(());
    }
    let waited = wait_until(
        aws.settings.deadline,
        &format!("ECS service {name} to reach its desired count"),
        || async {
            let Some(s) = aws.read_service(cluster, service).await? else {
                return Ok(Poll::Pending("not found".into()));
            };
            let primary = s
                .deployments()
                .iter()
                .find(|d| d.status() == Some("PRIMARY"));
            let rollout = primary
                .and_then(|d| d.rollout_state())
                .map(|r| r.as_str().to_string())
                .unwrap_or_default();
            if rollout == "FAILED" {
                let reason = primary
                    .and_then(|d| d.rollout_state_reason())
                    .unwrap_or("no reason given");
                return Ok(Poll::Failed(format!("deployment failed: {reason}")));
            }
            let done = s.running_count() == s.desired_count()
                && s.deployments().len() == 1
                && rollout == "COMPLETED";
            Ok(if done {
                Poll::Done
            } else {
                Poll::Pending(format!(
                    "{}/{} running, rollout {}",
                    s.running_count(),
                    s.desired_count(),
                    rollout
                ))
            })
        },
    )
    .await;
    let Err(e) = waited else { return Ok(()) };
    // Not "timed out" alone: what the service, its stopped tasks and the worker's log say.
    let worker = super::super::WorkerRef {
        cluster: cluster.to_owned(),
        service: name.to_owned(),
        pool: aws.settings.pools.get(name).cloned().unwrap_or_default(),
        log_group: aws.settings.log_group.clone().unwrap_or_default(),
    };
    let facts = aws.worker_facts(&worker, 30).await;
    Err(ProviderError(format!(
        "{e}\n{}",
        crate::diagnose::render(&facts).trim_end()
    )))
}

impl Resource for EcsService {
    async fn discover(&self, _: &Aws, _: &Spec) -> Result<Found, ProviderError> {
        // Read with the cluster: `EcsCluster::discover`.
        Ok(Found::default())
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        let (attrs, tags) = (c.attrs, c.tags);
        let name = attr(attrs, NAME)?;
        let cluster = attr(attrs, CLUSTER)?;
        let token = request_token();
        // A service of the same name that is still draining makes the create fail for a while.
        let out = retry_when(
            aws.settings.deadline,
            |e| {
                is_iam_propagation(e)
                    || e.is(&["InvalidParameterException"])
                        && e.message.contains("idempoten")
            },
            &format!("create ECS service {name}"),
            || async {
                aws.ecs
                    .create_service()
                    .cluster(cluster)
                    .service_name(name)
                    .task_definition(attr(attrs, TASK_DEFINITION).unwrap_or_default())
                    .desired_count(
                        attrs
                            .get(DESIRED_COUNT)
                            .and_then(Value::as_i64)
                            .unwrap_or(1) as i32,
                    )
                    .launch_type(LaunchType::Fargate)
                    .network_configuration(network(attrs))
                    .set_service_registries(Some(registries(attrs)))
                    .deployment_configuration(deployment(attrs))
                    .client_token(&token)
                    .set_tags(Some(ecs_tags(tags)))
                    .send()
                    .await
                    .map_err(|e| aws_err("CreateService", e))
            },
        )
        .await?;
        let arn = out
            .service()
            .and_then(|s| s.service_arn())
            .unwrap_or_default()
            .to_string();
        wait_stable(aws, cluster, &arn, name).await?;
        Ok(Outputs::from([
            ("id".into(), arn.clone()),
            ("arn".into(), arn),
            (NAME.into(), name.into()),
        ]))

    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        let (attrs, o) = (u.attrs, u.observed);
        let cluster = attr(attrs, CLUSTER)?;
        let fields = [
            TASK_DEFINITION,
            DESIRED_COUNT,
            NETWORK,
            SERVICE_REGISTRIES,
            DEPLOYMENT_CIRCUIT_BREAKER,
        ];
        // The plan's own request (a secret the tasks read got a new value): new tasks.
        let force = attrs.get(FORCE_NEW_DEPLOYMENT).and_then(Value::as_bool) == Some(true);
        if force || fields.iter().any(|f| changed(attrs, o, f)) {
            aws.ecs
                .update_service()
                .cluster(cluster)
                .service(&o.id)
                .force_new_deployment(force)
                .task_definition(attr(attrs, TASK_DEFINITION)?)
                .desired_count(
                    attrs
                        .get(DESIRED_COUNT)
                        .and_then(Value::as_i64)
                        .unwrap_or(1) as i32,
                )
                .network_configuration(network(attrs))
                // A rolling deployment (ECS) takes the registries in place: new tasks register,
                // old ones deregister as they stop.
                .set_service_registries(
                    changed(attrs, o, SERVICE_REGISTRIES).then(|| registries(attrs)),
                )
                .deployment_configuration(deployment(attrs))
                .send()
                .await
                .map_err(|e| aws_err("UpdateService", e))?;
            wait_stable(aws, cluster, &o.id, &o.address.name).await?;
        }

        sync_ecs_tags(aws, attrs, o).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        let deadline = aws.settings.deadline;
        let cluster = attr(&o.attrs, CLUSTER)?;
        // A forced delete scales the service down itself: no UpdateService to zero first.
        aws.ecs
            .delete_service()
            .cluster(cluster)
            .service(&o.id)
            .force(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_err("DeleteService", e))
            .or_else(already(&["ServiceNotFoundException"]))?;
        wait_until(
            deadline,
            &format!("ECS service {} to drain", o.address.name),
            || async {
                let status = aws
                    .read_service(cluster, &o.id)
                    .await?
                    .and_then(|s| s.status().map(str::to_owned))
                    .unwrap_or_else(|| "INACTIVE".into());
                Ok(if status == "INACTIVE" {
                    Poll::Done
                } else {
                    Poll::Pending(status)
                })
            },
        )
        .await

    }
}
