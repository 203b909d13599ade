//! ECS cluster, task definitions and services.

use std::collections::BTreeMap;

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, ClusterField, ClusterSetting, ClusterSettingName,
    Compatibility, ContainerDefinition, DeploymentCircuitBreaker, DeploymentConfiguration,
    HealthCheck, KeyValuePair, LaunchType, LogConfiguration, LogDriver, NetworkConfiguration,
    NetworkMode, Secret, ServiceField, ServiceRegistry, Tag, TaskDefinitionField,
};
use serde_json::{Value, json};

use super::create_untokened;
use super::{
    Aws, Found, Ownership, Poll, attr, attr_strings, aws_err, changed, observed, request_token,
    retry_codes, retry_when, tag_delta, tags_value, wait_until,
};
use crate::apply::ProviderError;
use crate::model::{Address, Attrs, Kind, Observed, Outputs, TAG_ADDRESS, TAG_SPEC, TAG_STACK};
use crate::spec::Spec;

fn ecs_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
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
        let name = &spec.cluster.name;
        let families: Vec<&str> = spec.workers.iter().map(|w| w.name.as_str()).collect();
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
        if let Some(c) = cluster {
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
                    ("name".into(), json!(name)),
                    ("container_insights".into(), json!(insights)),
                    ("tags".into(), tags_value(&tags)),
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
                    Ownership::Foreign(_) if families.contains(&sname) => {
                        found.named(
                            self,
                            Address::new(Kind::EcsService, sname),
                            format!("ECS service {sname}"),
                            &tags,
                        );
                        continue;
                    }
                    Ownership::Foreign(_) => continue,
                };
                let td = s.task_definition().unwrap_or_default().to_string();
                running.insert(address.name.clone(), td.clone());
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
                Ownership::Foreign(_) if !td.starts_with("arn:") => {
                    found.named(
                        self,
                        Address::new(Kind::TaskDefinition, family),
                        format!("task definition family {family}"),
                        &tags,
                    );
                    continue;
                }
                Ownership::Foreign(_) => continue,
            };
            found
                .resources
                .push(task_definition_observed(address, d, tags));
        }
        Ok(found)
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

    pub(super) async fn create_ecs(
        &self,
        address: &Address,
        attrs: &Attrs,
        tags: &BTreeMap<String, String>,
    ) -> Result<Outputs, ProviderError> {
        match address.kind {
            Kind::EcsCluster => {
                let name = attr(attrs, "name")?;
                // CreateCluster is idempotent by name (an ACTIVE cluster of that name is
                // returned as it is): the SDK's retries after a lost answer make no second one.
                let out = self
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
                    ("name".into(), name.into()),
                ]))
            }
            Kind::TaskDefinition => {
                let arn = self.register_task_definition(attrs, tags).await?;
                Ok(Outputs::from([
                    ("id".into(), arn.clone()),
                    ("arn".into(), arn),
                ]))
            }
            Kind::EcsService => {
                let name = attr(attrs, "name")?;
                let cluster = attr(attrs, "cluster")?;
                let token = request_token();
                // A service of the same name that is still draining makes the create fail for a while.
                let out = retry_when(
                    self.settings.deadline,
                    |e| {
                        is_iam_propagation(e)
                            || e.is(&["InvalidParameterException"])
                                && e.message.contains("idempoten")
                    },
                    &format!("create ECS service {name}"),
                    || async {
                        self.ecs
                            .create_service()
                            .cluster(cluster)
                            .service_name(name)
                            .task_definition(attr(attrs, "task_definition").unwrap_or_default())
                            .desired_count(
                                attrs
                                    .get("desired_count")
                                    .and_then(Value::as_i64)
                                    .unwrap_or(1) as i32,
                            )
                            .launch_type(LaunchType::Fargate)
                            .network_configuration(network(attrs))
                            .set_service_registries(Some(
                                attr_strings(attrs.get("service_registries"))
                                    .into_iter()
                                    .map(|a| ServiceRegistry::builder().registry_arn(a).build())
                                    .collect(),
                            ))
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
                self.wait_stable(cluster, &arn, name).await?;
                Ok(Outputs::from([
                    ("id".into(), arn.clone()),
                    ("arn".into(), arn),
                    ("name".into(), name.into()),
                ]))
            }
            _ => unreachable!("not an ECS kind"),
        }
    }

    async fn register_task_definition(
        &self,
        attrs: &Attrs,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, ProviderError> {
        let c = attrs.get("container").cloned().unwrap_or(Value::Null);
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
        let family = attr(attrs, "family").unwrap_or_default();
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
        retry_iam_propagation(self, || {
            create_untokened(
                &what,
                || self.register_once(attrs, tags, &container),
                || self.registered_since(family, tags, since),
            )
        })
        .await
    }

    async fn registered_since(
        &self,
        family: &str,
        tags: &BTreeMap<String, String>,
        since: aws_sdk_ecs::primitives::DateTime,
    ) -> Result<Option<String>, ProviderError> {
        let out = self
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

    async fn register_once(
        &self,
        attrs: &Attrs,
        tags: &BTreeMap<String, String>,
        container: &ContainerDefinition,
    ) -> Result<String, super::AwsError> {
        let out = self
            .ecs
            .register_task_definition()
            .family(attr(attrs, "family").unwrap_or_default())
            .cpu(attr(attrs, "cpu").unwrap_or_default())
            .memory(attr(attrs, "memory").unwrap_or_default())
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .execution_role_arn(attr(attrs, "execution_role_arn").unwrap_or_default())
            .task_role_arn(attr(attrs, "task_role_arn").unwrap_or_default())
            .container_definitions(container.clone())
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

    async fn wait_stable(
        &self,
        cluster: &str,
        service: &str,
        name: &str,
    ) -> Result<(), ProviderError> {
        if !self.settings.wait {
            return Ok(());
        }
        let waited = wait_until(
            self.settings.deadline,
            &format!("ECS service {name} to reach its desired count"),
            || async {
                let r = self
                    .ecs
                    .describe_services()
                    .cluster(cluster)
                    .services(service)
                    // Every DescribeServices asks for tags: moto applies include/exclude
                    // to all concurrent answers, and one without would strip discovery's tags.
                    .include(ServiceField::Tags)
                    .send()
                    .await
                    .map_err(|e| aws_err("DescribeServices", e))?;
                let Some(s) = r.services().first() else {
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
        let worker = super::WorkerRef {
            cluster: cluster.to_owned(),
            service: name.to_owned(),
            pool: self.settings.pools.get(name).cloned().unwrap_or_default(),
            log_group: self.settings.log_group.clone().unwrap_or_default(),
        };
        let facts = self.worker_facts(&worker, 30).await;
        Err(ProviderError(format!(
            "{e}\n{}",
            crate::diagnose::render(&facts).trim_end()
        )))
    }

    pub(super) async fn update_ecs(
        &self,
        attrs: &Attrs,
        o: &Observed,
    ) -> Result<(), ProviderError> {
        let arn = o.outputs.get("arn").cloned().unwrap_or_default();
        match o.address.kind {
            Kind::EcsCluster if changed(attrs, o, "container_insights") => {
                self.ecs
                    .update_cluster()
                    .cluster(&o.id)
                    .settings(insights(attrs))
                    .send()
                    .await
                    .map_err(|e| aws_err("UpdateCluster", e))?;
            }
            Kind::EcsService => {
                let cluster = attr(attrs, "cluster")?;
                let fields = [
                    "task_definition",
                    "desired_count",
                    "network",
                    "deployment_circuit_breaker",
                ];
                if fields.iter().any(|f| changed(attrs, o, f)) {
                    self.ecs
                        .update_service()
                        .cluster(cluster)
                        .service(&o.id)
                        .task_definition(attr(attrs, "task_definition")?)
                        .desired_count(
                            attrs
                                .get("desired_count")
                                .and_then(Value::as_i64)
                                .unwrap_or(1) as i32,
                        )
                        .network_configuration(network(attrs))
                        .deployment_configuration(deployment(attrs))
                        .send()
                        .await
                        .map_err(|e| aws_err("UpdateService", e))?;
                    self.wait_stable(cluster, &o.id, &o.address.name).await?;
                }
            }
            _ => {}
        }
        let (set, remove) = tag_delta(attrs, o);
        if !set.is_empty() {
            self.ecs
                .tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(ecs_tags(&set)))
                .send()
                .await
                .map_err(|e| aws_err("TagResource", e))?;
        }
        if !remove.is_empty() {
            self.ecs
                .untag_resource()
                .resource_arn(&arn)
                .set_tag_keys(Some(remove))
                .send()
                .await
                .map_err(|e| aws_err("UntagResource", e))?;
        }
        Ok(())
    }

    pub(super) async fn delete_ecs(&self, o: &Observed) -> Result<(), ProviderError> {
        let deadline = self.settings.deadline;
        match o.address.kind {
            Kind::EcsCluster => {
                retry_codes(
                    deadline,
                    &[
                        "ClusterContainsServicesException",
                        "ClusterContainsTasksException",
                    ],
                    &format!("delete ECS cluster {}", o.id),
                    || async {
                        self.ecs
                            .delete_cluster()
                            .cluster(&o.id)
                            .send()
                            .await
                            .map(|_| ())
                            .map(|_| ())
                            .map_err(|e| aws_err("DeleteCluster", e))
                            .or_else(super::already(&["ClusterNotFoundException"]))
                    },
                )
                .await
            }
            Kind::TaskDefinition => {
                self.ecs
                    .deregister_task_definition()
                    .task_definition(&o.id)
                    .send()
                    .await
                    .map_err(|e| aws_err("DeregisterTaskDefinition", e))?;
                Ok(())
            }
            Kind::EcsService => {
                let cluster = attr(&o.attrs, "cluster")?;
                // A forced delete scales the service down itself: no UpdateService to zero first.
                self.ecs
                    .delete_service()
                    .cluster(cluster)
                    .service(&o.id)
                    .force(true)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_err("DeleteService", e))
                    .or_else(super::already(&["ServiceNotFoundException"]))?;
                wait_until(
                    deadline,
                    &format!("ECS service {} to drain", o.address.name),
                    || async {
                        let r = self
                            .ecs
                            .describe_services()
                            .cluster(cluster)
                            .services(&o.id)
                            .include(ServiceField::Tags)
                            .send()
                            .await
                            .map_err(|e| aws_err("DescribeServices", e))?;
                        let status = r
                            .services()
                            .first()
                            .and_then(|s| s.status())
                            .unwrap_or("INACTIVE")
                            .to_string();
                        Ok(if status == "INACTIVE" {
                            Poll::Done
                        } else {
                            Poll::Pending(status)
                        })
                    },
                )
                .await
            }
            _ => unreachable!("not an ECS kind"),
        }
    }
}

/// Retry a call that IAM's eventual consistency can fail right after a role was created:
/// ECS checks `iam:PassRole` and role trust against an IAM that may not know the role yet.
async fn retry_iam_propagation<T, F, Fut>(aws: &Aws, op: F) -> Result<T, ProviderError>
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

fn is_iam_propagation(e: &super::AwsError) -> bool {
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

fn insights(attrs: &Attrs) -> ClusterSetting {
    ClusterSetting::builder()
        .name(ClusterSettingName::ContainerInsights)
        .value(
            attrs
                .get("container_insights")
                .and_then(Value::as_str)
                .unwrap_or("disabled"),
        )
        .build()
}

fn network(attrs: &Attrs) -> NetworkConfiguration {
    let n = attrs.get("network").cloned().unwrap_or(Value::Null);
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
        .get("deployment_circuit_breaker")
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
        ("name".into(), json!(s.service_name())),
        ("cluster".into(), json!(cluster)),
        ("task_definition".into(), json!(td)),
        ("desired_count".into(), json!(s.desired_count())),
        (
            "launch_type".into(),
            json!(s.launch_type().map(|l| l.as_str())),
        ),
        (
            "network".into(),
            json!({
                "subnets": subnets,
                "security_groups": sgs,
                "assign_public_ip": vpc.and_then(|v| v.assign_public_ip()).map(|a| a.as_str()).unwrap_or("DISABLED"),
            }),
        ),
        ("service_registries".into(), json!(registries)),
        ("tags".into(), tags_value(&tags)),
    ]);
    // Reported only by implementations that keep it: absent stays absent (unknown, not drift).
    if let Some(cb) = s
        .deployment_configuration()
        .and_then(|d| d.deployment_circuit_breaker())
    {
        attrs.insert(
            "deployment_circuit_breaker".into(),
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
        ("family".into(), json!(d.family())),
        ("cpu".into(), json!(d.cpu())),
        ("memory".into(), json!(d.memory())),
        (
            "network_mode".into(),
            json!(d.network_mode().map(|n| n.as_str())),
        ),
        (
            "requires_compatibilities".into(),
            json!(
                d.requires_compatibilities()
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
            ),
        ),
        ("execution_role_arn".into(), json!(exec)),
        ("task_role_arn".into(), json!(task)),
        ("container".into(), container),
        ("tags".into(), tags_value(&tags)),
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
