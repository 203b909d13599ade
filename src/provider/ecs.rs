//! ECS cluster, task definitions and services.

use std::collections::BTreeMap;

use aws_sdk_ecs::types::{
    ClusterField, ClusterSettingName, ServiceField, Tag, TaskDefinitionField,
};
use serde_json::{Value, json};

use super::{Aws, Found, Ownership, aws_err, observed, retry_when, tag_delta, tags_value};
use crate::apply::ProviderError;
use crate::kinds::{self, ecs_cluster, ecs_service, task_definition};
use crate::model::{Address, Attrs, Kind, Observed};
use crate::spec::Spec;

pub(super) fn ecs_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

type TaskDefinitionRead = Result<
    aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput,
    aws_sdk_ecs::error::SdkError<
        aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionError,
    >,
>;

impl Aws {
    pub(super) async fn discover_ecs(&self, spec: &Spec) -> Result<Found, ProviderError> {
        let mut found = Found::default();
        // An existing cluster (`[cluster] arn`) is read by its ARN and is not the stack's.
        let name = spec.cluster.arn.as_ref().unwrap_or(&spec.cluster.name);
        let families: Vec<&str> = spec.workers.iter().map(|w| w.family.as_str()).collect();
        let workers: Vec<&str> = spec.workers.iter().map(|w| w.name.as_str()).collect();
        // One wave: the cluster, its services (by cluster name) and the latest revision of every
        // desired family, which is what a service normally runs.
        let (clusters, services, latest) = tokio::join!(
            self.ecs
                .describe_clusters()
                .clusters(name)
                .include(ClusterField::Tags)
                .include(ClusterField::Settings)
                .send(),
            self.list_services(name),
            futures::future::join_all(families.iter().map(|f| self.describe_task_definition(f))),
        );
        let r = clusters.map_err(|e| aws_err("DescribeClusters", e))?;
        let cluster = r.clusters().iter().find(|c| c.status() == Some("ACTIVE"));
        let mut cluster_arn = None;
        if let (Some(c), Some(_)) = (cluster, &spec.cluster.arn) {
            cluster_arn = c.cluster_arn().map(str::to_owned);
        } else if let Some(c) = cluster {
            let tags = tag_map(c.tags());
            let address = Address::new(Kind::EcsCluster, "main");
            if found.named(self, address.clone(), format!("ECS cluster {name}"), &tags) {
                let arn = c.cluster_arn().unwrap_or_default().to_string();
                let insights = c
                    .settings()
                    .iter()
                    .find(|s| s.name() == Some(&ClusterSettingName::ContainerInsights))
                    .and_then(|s| s.value())
                    .unwrap_or("disabled");
                let attrs = Attrs::from([
                    (ecs_cluster::NAME.into(), json!(name)),
                    (ecs_cluster::CONTAINER_INSIGHTS.into(), json!(insights)),
                    (kinds::TAGS.into(), tags_value(&tags)),
                ]);
                found.resources.push(observed(
                    address,
                    &arn,
                    &[("arn", &arn), ("name", name)],
                    attrs,
                    vec![],
                ));
                cluster_arn = Some(arn);
            }
        }
        if let (Some(arn), None) = (&spec.cluster.arn, &cluster_arn) {
            found.missing.push(format!(
                "[cluster] arn {arn}: no such active ECS cluster; check the ARN and the region"
            ));
            return Ok(found);
        }
        // Task definitions the services run, and the latest revision of every desired family.
        let mut task_defs: Vec<String> = families.iter().map(|f| f.to_string()).collect();
        let mut running: BTreeMap<String, String> = BTreeMap::new();
        // The services of a cluster that is not this stack's (or not there) are none of ours.
        if let Some(arn) = &cluster_arn {
            for s in services? {
                let sname = s.service_name().unwrap_or_default();
                let tags = tag_map(s.tags());
                let address = match self.ownership(&tags) {
                    Ownership::Ours(a) => a,
                    Ownership::Foreign(_) if workers.contains(&sname) => {
                        let address = Address::new(Kind::EcsService, sname);
                        let what = format!("ECS service {sname}");
                        // Adopted, or a conflict.
                        if !found.named(self, address.clone(), what, &tags) {
                            continue;
                        }
                        address
                    }
                    Ownership::Foreign(_) => continue,
                };
                let td = s.task_definition().unwrap_or_default().to_string();
                // Keyed by the family, which the reads below start from.
                let family = spec.workers.iter().find(|w| w.name == address.name);
                let family = family.map_or(address.name.clone(), |w| w.family.clone());
                running.insert(family, td.clone());
                task_defs.push(td.clone());
                found
                    .resources
                    .push(service_observed(address, &s, arn, tags));
            }
        }
        // A worker's task definition is the revision its service runs, else the family's latest.
        let mut seen = std::collections::BTreeSet::new();
        let reads: Vec<String> = task_defs
            .into_iter()
            .map(|td| running.get(&td).cloned().unwrap_or(td))
            .filter(|td| seen.insert(td.clone()))
            .collect();
        let mut have: BTreeMap<String, TaskDefinitionRead> = BTreeMap::new();
        for (family, read) in families.iter().zip(latest) {
            if let Ok(r) = &read
                && let Some(arn) = r.task_definition().and_then(|d| d.task_definition_arn())
            {
                have.insert(arn.to_string(), Ok(r.clone()));
            }
            have.insert(family.to_string(), read);
        }
        // Only a service on another revision than its family's latest needs one more read.
        let missing: Vec<&String> = reads.iter().filter(|td| !have.contains_key(*td)).collect();
        let more =
            futures::future::join_all(missing.iter().map(|td| self.describe_task_definition(td)))
                .await;
        have.extend(missing.into_iter().cloned().zip(more));
        for td in &reads {
            let r = match have.remove(td).expect("every revision was read") {
                Ok(r) => r,
                Err(e) => {
                    let e = aws_err("DescribeTaskDefinition", e);
                    if e.is(&["ClientException"]) {
                        continue; // no such family
                    }
                    return Err(e.into());
                }
            };
            let Some(d) = r.task_definition() else {
                continue;
            };
            if d.status().map(|s| s.as_str()) != Some("ACTIVE") {
                continue;
            }
            let tags = tag_map(r.tags());
            let family = d.family().unwrap_or_default();
            let address = match self.ownership(&tags) {
                Ownership::Ours(a) => a,
                Ownership::Foreign(_) if !td.starts_with("arn:") || self.adoptable(&tags) => {
                    let worker = spec.workers.iter().find(|w| w.family == family);
                    let address =
                        Address::new(Kind::TaskDefinition, worker.map_or(family, |w| &w.name));
                    let what = format!("task definition family {family}");
                    if !found.named(self, address.clone(), what, &tags) {
                        continue;
                    }
                    address
                }
                Ownership::Foreign(_) => continue,
            };
            found
                .resources
                .push(task_definition_observed(address, d, tags));
        }
        Ok(found)
    }

    /// The ACTIVE revisions of exactly `family` (ListTaskDefinitions takes a prefix only).
    pub(super) async fn active_revisions(
        &self,
        family: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let mut out = Vec::new();
        let mut pages = self
            .ecs
            .list_task_definitions()
            .family_prefix(family)
            .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_err("ListTaskDefinitions", e))?;
            out.extend(
                page.task_definition_arns()
                    .iter()
                    .filter(|arn| {
                        arn.rsplit('/')
                            .next()
                            .and_then(|r| r.rsplit_once(':'))
                            .is_some_and(|(f, _)| f == family)
                    })
                    .cloned(),
            );
        }
        Ok(out)
    }

    async fn describe_task_definition(&self, td: &str) -> TaskDefinitionRead {
        self.ecs
            .describe_task_definition()
            .task_definition(td)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
    }

    async fn list_services(
        &self,
        cluster: &str,
    ) -> Result<Vec<aws_sdk_ecs::types::Service>, ProviderError> {
        let mut arns = Vec::new();
        let mut pages = self
            .ecs
            .list_services()
            .cluster(cluster)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            arns.extend(
                page.map_err(|e| aws_err("ListServices", e))?
                    .service_arns()
                    .iter()
                    .cloned(),
            );
        }
        // Ten services per call (AWS's limit), the calls all at once.
        let described = futures::future::join_all(arns.chunks(10).map(|chunk| {
            self.ecs
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk.to_vec()))
                .include(ServiceField::Tags)
                .send()
        }))
        .await;
        let mut out = Vec::new();
        for r in described {
            let r = r.map_err(|e| aws_err("DescribeServices", e))?;
            // A draining service is on its way out; an inactive one is gone.
            out.extend(
                r.services()
                    .iter()
                    .filter(|s| s.status() == Some("ACTIVE"))
                    .cloned(),
            );
        }
        Ok(out)
    }
}

/// Retry a call that IAM's eventual consistency can fail right after a role was created:
/// ECS checks `iam:PassRole` and role trust against an IAM that may not know the role yet.
pub(super) async fn retry_iam_propagation<T, F, Fut>(aws: &Aws, op: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, super::AwsError>>,
{
    let window = aws
        .settings
        .deadline
        .min(std::time::Duration::from_secs(120));
    retry_when(
        window,
        is_iam_propagation,
        "wait for new IAM roles to propagate",
        op,
    )
    .await
}

pub(super) fn is_iam_propagation(e: &super::AwsError) -> bool {
    const SIGNS: &[&str] = &[
        "Role is not valid",
        "nable to assume",
        "iam:PassRole",
        "role being passed",
    ];
    e.is(&[
        "AccessDeniedException",
        "ClientException",
        "InvalidParameterException",
    ]) && SIGNS.iter().any(|s| e.message.contains(s))
}

fn service_observed(
    address: Address,
    s: &aws_sdk_ecs::types::Service,
    cluster: &str,
    tags: BTreeMap<String, String>,
) -> Observed {
    let arn = s.service_arn().unwrap_or_default();
    let vpc = s
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration());
    let subnets: Vec<String> = vpc.map(|v| v.subnets().to_vec()).unwrap_or_default();
    let sgs: Vec<String> = vpc
        .map(|v| v.security_groups().to_vec())
        .unwrap_or_default();
    let registries: Vec<String> = s
        .service_registries()
        .iter()
        .filter_map(|r| r.registry_arn().map(String::from))
        .collect();
    let td = s.task_definition().unwrap_or_default();
    let mut attrs = Attrs::from([
        (ecs_service::NAME.into(), json!(s.service_name())),
        (ecs_service::CLUSTER.into(), json!(cluster)),
        (ecs_service::TASK_DEFINITION.into(), json!(td)),
        (ecs_service::DESIRED_COUNT.into(), json!(s.desired_count())),
        (
            ecs_service::LAUNCH_TYPE.into(),
            json!(s.launch_type().map(|l| l.as_str())),
        ),
        (
            ecs_service::NETWORK.into(),
            json!({
                "subnets": subnets,
                "security_groups": sgs,
                "assign_public_ip": vpc.and_then(|v| v.assign_public_ip()).map(|a| a.as_str()).unwrap_or("DISABLED"),
            }),
        ),
        (ecs_service::SERVICE_REGISTRIES.into(), json!(registries)),
        (kinds::TAGS.into(), tags_value(&tags)),
    ]);
    // Reported only by implementations that keep it: absent stays absent (unknown, not drift).
    if let Some(cb) = s
        .deployment_configuration()
        .and_then(|d| d.deployment_circuit_breaker())
    {
        attrs.insert(
            ecs_service::DEPLOYMENT_CIRCUIT_BREAKER.into(),
            json!({"enable": cb.enable(), "rollback": cb.rollback()}),
        );
    }
    let uses = [
        vec![cluster.to_string(), td.to_string()],
        subnets,
        sgs,
        registries,
    ]
    .concat();
    observed(
        address,
        arn,
        &[("arn", arn), ("name", s.service_name().unwrap_or_default())],
        attrs,
        uses,
    )
}

fn task_definition_observed(
    address: Address,
    d: &aws_sdk_ecs::types::TaskDefinition,
    tags: BTreeMap<String, String>,
) -> Observed {
    let arn = d.task_definition_arn().unwrap_or_default();
    let c = d.container_definitions().first();
    let environment: Vec<Value> = c
        .map(|c| {
            c.environment()
                .iter()
                .map(|e| json!({"name": e.name(), "value": e.value()}))
                .collect()
        })
        .unwrap_or_default();
    let secrets: Vec<Value> = c
        .map(|c| {
            c.secrets()
                .iter()
                .map(|s| json!({"name": s.name(), "value_from": s.value_from()}))
                .collect()
        })
        .unwrap_or_default();
    let log = c.and_then(|c| c.log_configuration());
    let options: BTreeMap<String, String> = log
        .and_then(|l| l.options())
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let container = json!({
        "name": c.and_then(|c| c.name()),
        "image": c.and_then(|c| c.image()),
        "essential": c.and_then(|c| c.essential()).unwrap_or(true),
        "command": c.map(|c| c.command().to_vec()).unwrap_or_default(),
        "environment": environment,
        "secrets": secrets,
        "log_configuration": {"driver": log.map(|l| l.log_driver().as_str()), "options": options},
    });
    let mut container = container;
    if let Some(h) = c.and_then(|c| c.health_check()) {
        container["health_check"] = json!({
            "command": h.command(),
            "interval": h.interval(),
            "timeout": h.timeout(),
            "retries": h.retries(),
            "start_period": h.start_period(),
        });
    }
    if let Some(t) = c.and_then(|c| c.stop_timeout()) {
        container["stop_timeout"] = json!(t);
    }
    let exec = d.execution_role_arn().unwrap_or_default();
    let task = d.task_role_arn().unwrap_or_default();
    let attrs = Attrs::from([
        (task_definition::FAMILY.into(), json!(d.family())),
        (
            task_definition::CPU_ARCHITECTURE.into(),
            json!(
                d.runtime_platform()
                    .and_then(|r| r.cpu_architecture())
                    .map_or(task_definition::X86_64, |a| a.as_str())
            ),
        ),
        (task_definition::CPU.into(), json!(d.cpu())),
        (task_definition::MEMORY.into(), json!(d.memory())),
        (
            task_definition::NETWORK_MODE.into(),
            json!(d.network_mode().map(|n| n.as_str())),
        ),
        (
            task_definition::REQUIRES_COMPATIBILITIES.into(),
            json!(
                d.requires_compatibilities()
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
            ),
        ),
        (task_definition::EXECUTION_ROLE_ARN.into(), json!(exec)),
        (task_definition::TASK_ROLE_ARN.into(), json!(task)),
        (task_definition::CONTAINER.into(), container),
        (kinds::TAGS.into(), tags_value(&tags)),
    ]);
    let mut uses = vec![exec.to_string(), task.to_string()];
    uses.extend(
        c.iter()
            .flat_map(|c| c.secrets())
            .map(|s| s.value_from().to_string()),
    );
    uses.extend(options.get("awslogs-group").cloned());
    observed(address, arn, &[("arn", arn)], attrs, uses)
}

/// Tags set and removed to go from the observed resource's to the wanted ones.
pub(super) async fn sync_ecs_tags(
    aws: &Aws,
    attrs: &Attrs,
    o: &Observed,
) -> Result<(), ProviderError> {
    let arn = o.outputs.get("arn").cloned().unwrap_or_default();
    let (set, remove) = tag_delta(attrs, o);
    if !set.is_empty() {
        aws.ecs
            .tag_resource()
            .resource_arn(&arn)
            .set_tags(Some(ecs_tags(&set)))
            .send()
            .await
            .map_err(|e| aws_err("TagResource", e))?;
    }
    if !remove.is_empty() {
        aws.ecs
            .untag_resource()
            .resource_arn(&arn)
            .set_tag_keys(Some(remove))
            .send()
            .await
            .map_err(|e| aws_err("UntagResource", e))?;
    }
    Ok(())
}
