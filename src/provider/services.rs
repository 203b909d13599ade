//! Secrets Manager, Cloud Map and CloudWatch Logs: found by name, owned only when tagged.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    Aws, Found, Poll, attr, aws_err, changed, observed, request_token, retry_codes, retry_when,
    tag_delta, tags_value, wait_until,
};
use crate::apply::ProviderError;
use crate::model::{Address, Attrs, Kind, Observed, Outputs};
use crate::secret::SecretValue;
use crate::spec::Spec;

impl Aws {
    pub(super) async fn discover_secret(&self, spec: &Spec) -> Result<Found, ProviderError> {
        let mut found = Found::default();
        let name = &spec.secret.name;
        let d = match self.secrets.describe_secret().secret_id(name).send().await {
            Ok(d) => d,
            Err(e) => {
                let e = aws_err("DescribeSecret", e);
                return if e.is(&["ResourceNotFoundException"]) {
                    Ok(found)
                } else {
                    Err(e.into())
                };
            }
        };
        let tags: BTreeMap<String, String> = d
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect();
        let address = Address::new(Kind::Secret, "api_key");
        if !found.named(self, address.clone(), format!("secret {name}"), &tags) {
            return Ok(found);
        }
        let arn = d.arn().unwrap_or_default().to_string();
        let scheduled = d.deleted_date().is_some();
        let attrs = Attrs::from([
            ("name".into(), json!(d.name())),
            ("description".into(), json!(d.description())),
            ("scheduled_for_deletion".into(), json!(scheduled)),
            ("tags".into(), tags_value(&tags)),
        ]);
        let mut o = observed(
            address,
            &arn,
            &[("arn", &arn), ("name", name)],
            attrs,
            vec![],
        );
        o.deleting = scheduled;
        // A secret scheduled for deletion cannot be read; its value is compared after restore.
        if !scheduled {
            match self.secrets.get_secret_value().secret_id(&arn).send().await {
                Ok(v) => o.sensitive = v.secret_string().map(|s| SecretValue::new(s.to_string())),
                Err(e) => {
                    let e = aws_err("GetSecretValue", e);
                    if !e.is(&["ResourceNotFoundException"]) {
                        return Err(e.into());
                    }
                }
            }
        }
        found.resources.push(o);
        Ok(found)
    }

    pub(super) async fn create_secret(
        &self,
        attrs: &Attrs,
        tags: &BTreeMap<String, String>,
        value: Option<&SecretValue>,
    ) -> Result<Outputs, ProviderError> {
        let value = value.ok_or_else(|| {
            ProviderError("secret value is not available (is the API key set?)".into())
        })?;
        let name = attr(attrs, "name")?;
        // A force-deleted name is released asynchronously: creating it again fails for a while.
        let out = retry_when(
            self.settings.deadline,
            |e| e.is(&["InvalidRequestException"]) && e.message.contains("scheduled for deletion"),
            &format!("create secret {name}"),
            || async {
                self.secrets
                    .create_secret()
                    .name(name)
                    .description(attr(attrs, "description").unwrap_or_default())
                    .secret_string(value.expose())
                    .set_tags(Some(
                        tags.iter()
                            .map(|(k, v)| {
                                aws_sdk_secretsmanager::types::Tag::builder()
                                    .key(k)
                                    .value(v)
                                    .build()
                            })
                            .collect(),
                    ))
                    .send()
                    .await
                    .map_err(|e| aws_err("CreateSecret", e))
            },
        )
        .await?;
        let arn = out.arn().unwrap_or_default().to_string();
        Ok(Outputs::from([
            ("id".into(), arn.clone()),
            ("arn".into(), arn),
            ("name".into(), name.into()),
        ]))
    }

    pub(super) async fn update_secret(
        &self,
        attrs: &Attrs,
        value: Option<&SecretValue>,
        o: &Observed,
    ) -> Result<(), ProviderError> {
        if o.attrs.get("scheduled_for_deletion") == Some(&json!(true)) {
            self.secrets
                .restore_secret()
                .secret_id(&o.id)
                .send()
                .await
                .map_err(|e| aws_err("RestoreSecret", e))?;
        }
        if changed(attrs, o, "description") {
            self.secrets
                .update_secret()
                .secret_id(&o.id)
                .description(attr(attrs, "description")?)
                .send()
                .await
                .map_err(|e| aws_err("UpdateSecret", e))?;
        }
        if let Some(v) = value
            && o.sensitive.as_ref() != Some(v)
        {
            self.secrets
                .put_secret_value()
                .secret_id(&o.id)
                .secret_string(v.expose())
                .send()
                .await
                .map_err(|e| aws_err("PutSecretValue", e))?;
        }
        let (set, remove) = tag_delta(attrs, o);
        if !set.is_empty() {
            self.secrets
                .tag_resource()
                .secret_id(&o.id)
                .set_tags(Some(
                    set.iter()
                        .map(|(k, v)| {
                            aws_sdk_secretsmanager::types::Tag::builder()
                                .key(k)
                                .value(v)
                                .build()
                        })
                        .collect(),
                ))
                .send()
                .await
                .map_err(|e| aws_err("TagResource", e))?;
        }
        if !remove.is_empty() {
            self.secrets
                .untag_resource()
                .secret_id(&o.id)
                .set_tag_keys(Some(remove))
                .send()
                .await
                .map_err(|e| aws_err("UntagResource", e))?;
        }
        Ok(())
    }

    pub(super) async fn delete_secret(&self, o: &Observed) -> Result<(), ProviderError> {
        let mut req = self.secrets.delete_secret().secret_id(&o.id);
        req = match self.settings.recovery_window_days {
            Some(days) if o.attrs.get("scheduled_for_deletion") != Some(&json!(true)) => {
                req.recovery_window_in_days(days.into())
            }
            Some(_) => return Ok(()),
            None => req.force_delete_without_recovery(true),
        };
        req.send()
            .await
            .map(|_| ())
            .map_err(|e| aws_err("DeleteSecret", e))
            .or_else(super::already(&["ResourceNotFoundException"]))?;
        Ok(())
    }

    pub(super) async fn discover_cloud_map(&self, spec: &Spec) -> Result<Found, ProviderError> {
        let mut found = Found::default();
        let mut namespaces = Vec::new();
        let mut pages = self.sd.list_namespaces().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_err("ListNamespaces", e))?;
            namespaces.extend(
                page.namespaces()
                    .iter()
                    .filter(|n| n.name() == Some(spec.namespace.as_str()))
                    .cloned(),
            );
        }
        let address = Address::new(Kind::Namespace, "main");
        // Each namespace of that name: its tags, its details and its services, in one wave.
        let reads = futures::future::join_all(namespaces.iter().map(|ns| async move {
            let (Some(id), Some(arn)) = (ns.id(), ns.arn()) else {
                return None;
            };
            let (tags, full, services) = tokio::join!(
                self.sd_tags(arn),
                self.sd.get_namespace().id(id).send(),
                self.namespace_services(id),
            );
            Some((id, arn, tags, full, services))
        }))
        .await;
        let mut ours = None;
        for (ns, read) in namespaces.iter().zip(reads) {
            let Some((id, arn, tags, full, listed)) = read else {
                continue;
            };
            let tags = tags?;
            if !found.named(
                self,
                address.clone(),
                format!("Cloud Map namespace {} ({id})", spec.namespace),
                &tags,
            ) {
                continue;
            }
            let full = full.map_err(|e| aws_err("GetNamespace", e))?;
            // Cloud Map does not report a private namespace's VPC; the tool records it in the
            // description at creation.
            let vpc = full
                .namespace()
                .and_then(|n| n.description())
                .and_then(|d| d.rsplit_once("vpc "))
                .map(|(_, v)| v.to_string());
            let attrs = Attrs::from([
                ("name".into(), json!(ns.name())),
                ("vpc_id".into(), json!(vpc)),
                ("tags".into(), tags_value(&tags)),
            ]);
            found.resources.push(observed(
                address.clone(),
                id,
                &[("arn", arn), ("name", &spec.namespace)],
                attrs,
                vpc.into_iter().collect(),
            ));
            ours = Some((id.to_string(), listed?));
        }
        let Some((ns_id, services)) = ours else {
            return Ok(found);
        };
        // One read per service, all at once; the namespace is checked again on each answer
        // because not every implementation honours the filter.
        let details = futures::future::join_all(
            services
                .iter()
                .map(|s| self.cloud_map_service(s.id(), s.arn())),
        )
        .await;
        let workers: Vec<&str> = spec.workers.iter().map(|w| w.name.as_str()).collect();
        for (s, detail) in services.iter().zip(details) {
            let (Some(id), Some(arn), Some(name)) = (s.id(), s.arn(), s.name()) else {
                continue;
            };
            let Some((detail, tags)) = detail? else {
                continue;
            };
            if detail.namespace_id() != Some(ns_id.as_str()) {
                continue;
            }
            let expected = Address::new(Kind::CloudMapService, name);
            let owned = match self.ownership(&tags) {
                super::Ownership::Ours(a) => Some(a),
                super::Ownership::Foreign(_) if workers.contains(&name) => {
                    found.named(self, expected, format!("Cloud Map service {name}"), &tags);
                    None
                }
                super::Ownership::Foreign(_) => None,
            };
            let Some(address) = owned else { continue };
            let records: Vec<Value> = detail
                .dns_config()
                .map(|d| {
                    d.dns_records()
                        .iter()
                        .map(|r| json!({"type": r.r#type().as_str(), "ttl": r.ttl()}))
                        .collect()
                })
                .unwrap_or_default();
            let attrs = Attrs::from([
                ("name".into(), json!(name)),
                ("namespace_id".into(), json!(ns_id)),
                ("dns_records".into(), Value::Array(records)),
                ("tags".into(), tags_value(&tags)),
            ]);
            found.resources.push(observed(
                address,
                id,
                &[("arn", arn), ("name", name)],
                attrs,
                vec![ns_id.clone()],
            ));
        }
        Ok(found)
    }

    /// The Cloud Map services listed in namespace `ns_id`.
    async fn namespace_services(
        &self,
        ns_id: &str,
    ) -> Result<Vec<aws_sdk_servicediscovery::types::ServiceSummary>, ProviderError> {
        let filter = aws_sdk_servicediscovery::types::ServiceFilter::builder()
            .name(aws_sdk_servicediscovery::types::ServiceFilterName::NamespaceId)
            .values(ns_id)
            .build()
            .map_err(|e| ProviderError(e.to_string()))?;
        let mut services = Vec::new();
        let mut pages = self
            .sd
            .list_services()
            .filters(filter)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_err("ListServices", e))?;
            services.extend(page.services().iter().cloned());
        }
        Ok(services)
    }

    /// A Cloud Map service and its tags; `None` when it went away since it was listed (another
    /// stack's destroy can run at the same time).
    async fn cloud_map_service(
        &self,
        id: Option<&str>,
        arn: Option<&str>,
    ) -> Result<
        Option<(
            aws_sdk_servicediscovery::types::Service,
            BTreeMap<String, String>,
        )>,
        ProviderError,
    > {
        let (Some(id), Some(arn)) = (id, arn) else {
            return Ok(None);
        };
        let gone = |e: &super::AwsError| e.is(&["ServiceNotFound", "ResourceNotFoundException"]);
        // The listing gave both the id and the ARN: details and tags in one round trip.
        let (detail, tags) = tokio::join!(
            self.sd.get_service().id(id).send(),
            self.sd.list_tags_for_resource().resource_arn(arn).send(),
        );
        let detail = match detail.map_err(|e| aws_err("GetService", e)) {
            Ok(d) => d,
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(detail) = detail.service().cloned() else {
            return Ok(None);
        };
        match tags.map_err(|e| aws_err("ListTagsForResource", e)) {
            Ok(t) => Ok(Some((
                detail,
                t.tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
            ))),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn sd_tags(&self, arn: &str) -> Result<BTreeMap<String, String>, ProviderError> {
        let t = self
            .sd
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|e| aws_err("ListTagsForResource", e))?;
        Ok(t.tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
    }

    fn sd_tag_list(tags: &BTreeMap<String, String>) -> Vec<aws_sdk_servicediscovery::types::Tag> {
        tags.iter()
            .filter_map(|(k, v)| {
                aws_sdk_servicediscovery::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .ok()
            })
            .collect()
    }

    /// Wait for a Cloud Map operation; returns its targets (e.g. `NAMESPACE` → id).
    async fn sd_operation(
        &self,
        op: &str,
        what: &str,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        let targets = std::cell::RefCell::new(BTreeMap::new());
        wait_until(self.settings.deadline, what, || async {
            let r = self
                .sd
                .get_operation()
                .operation_id(op)
                .send()
                .await
                .map_err(|e| aws_err("GetOperation", e))?;
            let o = r.operation();
            if let Some(t) = o.and_then(|o| o.targets()) {
                *targets.borrow_mut() = t
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                    .collect();
            }
            let status = o
                .and_then(|o| o.status())
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            Ok(match status.as_str() {
                "SUCCESS" => Poll::Done,
                "FAIL" => Poll::Failed(
                    o.and_then(|o| o.error_message())
                        .unwrap_or("operation failed")
                        .to_string(),
                ),
                _ => Poll::Pending(status),
            })
        })
        .await?;
        Ok(targets.into_inner())
    }

    pub(super) async fn create_namespace(
        &self,
        attrs: &Attrs,
        tags: &BTreeMap<String, String>,
    ) -> Result<Outputs, ProviderError> {
        let name = attr(attrs, "name")?;
        let vpc = attr(attrs, "vpc_id")?;
        let out = self
            .sd
            .create_private_dns_namespace()
            .name(name)
            .vpc(vpc)
            .description(format!(
                "prefect-ecs stack {} in vpc {vpc}",
                self.settings.stack
            ))
            .creator_request_id(request_token())
            .set_tags(Some(Self::sd_tag_list(tags)))
            .send()
            .await
            .map_err(|e| aws_err("CreatePrivateDnsNamespace", e))?;
        let op = out.operation_id().unwrap_or_default();
        let targets = self
            .sd_operation(op, &format!("Cloud Map namespace {name}"))
            .await?;
        let id = targets.get("NAMESPACE").cloned().ok_or_else(|| {
            ProviderError(format!(
                "Cloud Map namespace {name}: operation {op} named no namespace"
            ))
        })?;
        let ns = self
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
            ("name".into(), name.into()),
        ]))
    }

    pub(super) async fn create_cloud_map_service(
        &self,
        attrs: &Attrs,
        tags: &BTreeMap<String, String>,
    ) -> Result<Outputs, ProviderError> {
        use aws_sdk_servicediscovery::types::{
            DnsConfig, DnsRecord, HealthCheckCustomConfig, RecordType, RoutingPolicy,
        };
        let name = attr(attrs, "name")?;
        let ns = attr(attrs, "namespace_id")?;
        let records: Vec<DnsRecord> = attrs
            .get("dns_records")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| {
                DnsRecord::builder()
                    .r#type(RecordType::from(r["type"].as_str().unwrap_or("A")))
                    .ttl(r["ttl"].as_i64().unwrap_or(60))
                    .build()
                    .ok()
            })
            .collect();
        let out = self
            .sd
            .create_service()
            .name(name)
            .namespace_id(ns)
            .creator_request_id(request_token())
            .dns_config(
                DnsConfig::builder()
                    .routing_policy(RoutingPolicy::Multivalue)
                    .set_dns_records(Some(records))
                    .build()
                    .map_err(|e| ProviderError(e.to_string()))?,
            )
            .health_check_custom_config(HealthCheckCustomConfig::builder().build())
            .set_tags(Some(Self::sd_tag_list(tags)))
            .send()
            .await
            .map_err(|e| aws_err("CreateService", e))?;
        let s = out.service();
        let id = s.and_then(|s| s.id()).unwrap_or_default().to_string();
        let arn = s.and_then(|s| s.arn()).unwrap_or_default().to_string();
        Ok(Outputs::from([
            ("id".into(), id),
            ("arn".into(), arn),
            ("name".into(), name.into()),
        ]))
    }

    pub(super) async fn update_cloud_map_tags(
        &self,
        attrs: &Attrs,
        o: &Observed,
    ) -> Result<(), ProviderError> {
        let arn = o.outputs.get("arn").cloned().unwrap_or_default();
        let (set, remove) = tag_delta(attrs, o);
        if !set.is_empty() {
            self.sd
                .tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(Self::sd_tag_list(&set)))
                .send()
                .await
                .map_err(|e| aws_err("TagResource", e))?;
        }
        if !remove.is_empty() {
            self.sd
                .untag_resource()
                .resource_arn(&arn)
                .set_tag_keys(Some(remove))
                .send()
                .await
                .map_err(|e| aws_err("UntagResource", e))?;
        }
        Ok(())
    }

    pub(super) async fn delete_namespace(&self, o: &Observed) -> Result<(), ProviderError> {
        let what = format!("delete Cloud Map namespace {}", o.id);
        let out = retry_codes(
            self.settings.deadline,
            &["ResourceInUse"],
            &what,
            || async {
                self.sd
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
            self.sd_operation(&op, &what).await?;
        }
        Ok(())
    }

    pub(super) async fn delete_cloud_map_service(&self, o: &Observed) -> Result<(), ProviderError> {
        // ECS deregisters the service's instances when the ECS service goes; until then: in use.
        retry_codes(
            self.settings.deadline,
            &["ResourceInUse"],
            &format!("delete Cloud Map service {}", o.id),
            || async {
                self.sd
                    .delete_service()
                    .id(&o.id)
                    .send()
                    .await
                    .map(|_| ())
                    .map(|_| ())
                    .map_err(|e| aws_err("DeleteService", e))
                    .or_else(super::already(&["ServiceNotFound"]))
            },
        )
        .await
    }

    /// The log group named exactly `name` and its tags, if it exists.
    async fn log_group_named(
        &self,
        name: &str,
    ) -> Result<
        Option<(
            aws_sdk_cloudwatchlogs::types::LogGroup,
            BTreeMap<String, String>,
        )>,
        ProviderError,
    > {
        let r = self
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
        let t = self
            .logs
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|e| aws_err("ListTagsForResource", e))?;
        let tags = t.tags().cloned().unwrap_or_default().into_iter().collect();
        Ok(Some((g.clone(), tags)))
    }

    pub(super) async fn discover_log_group(&self, spec: &Spec) -> Result<Found, ProviderError> {
        let mut found = Found::default();
        let name = &spec.logs.group;
        let Some((g, tags)) = self.log_group_named(name).await? else {
            return Ok(found);
        };
        let arn = g
            .arn()
            .unwrap_or_default()
            .trim_end_matches(":*")
            .to_string();
        let address = Address::new(Kind::LogGroup, "workers");
        if !found.named(self, address.clone(), format!("log group {name}"), &tags) {
            return Ok(found);
        }
        let attrs = Attrs::from([
            ("name".into(), json!(name)),
            ("retention_in_days".into(), json!(g.retention_in_days())),
            ("tags".into(), tags_value(&tags)),
        ]);
        found.resources.push(observed(
            address,
            name,
            &[("arn", &arn), ("name", name)],
            attrs,
            vec![],
        ));
        Ok(found)
    }

    pub(super) async fn create_log_group(
        &self,
        attrs: &Attrs,
        tags: &BTreeMap<String, String>,
    ) -> Result<Outputs, ProviderError> {
        let name = attr(attrs, "name")?;
        let created = self
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
                let found = self
                    .log_group_named(name)
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
            self.put_retention(name, attrs),
            self.logs
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
            ("name".into(), name.into()),
            ("arn".into(), arn),
        ]))
    }

    async fn put_retention(&self, name: &str, attrs: &Attrs) -> Result<(), ProviderError> {
        if let Some(days) = attrs.get("retention_in_days").and_then(Value::as_i64) {
            self.logs
                .put_retention_policy()
                .log_group_name(name)
                .retention_in_days(days as i32)
                .send()
                .await
                .map_err(|e| aws_err("PutRetentionPolicy", e))?;
        }
        Ok(())
    }

    pub(super) async fn update_log_group(
        &self,
        attrs: &Attrs,
        o: &Observed,
    ) -> Result<(), ProviderError> {
        if changed(attrs, o, "retention_in_days") {
            self.put_retention(&o.id, attrs).await?;
        }
        let arn = o.outputs.get("arn").cloned().unwrap_or_default();
        let (set, remove) = tag_delta(attrs, o);
        if !set.is_empty() {
            self.logs
                .tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(set.into_iter().collect()))
                .send()
                .await
                .map_err(|e| aws_err("TagResource", e))?;
        }
        if !remove.is_empty() {
            self.logs
                .untag_resource()
                .resource_arn(&arn)
                .set_tag_keys(Some(remove))
                .send()
                .await
                .map_err(|e| aws_err("UntagResource", e))?;
        }
        Ok(())
    }

    pub(super) async fn delete_log_group(&self, o: &Observed) -> Result<(), ProviderError> {
        match self
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
}
