//! What the Cloud Map kinds (`kinds/namespace.rs`, `kinds/cloud_map_service.rs`) share: the
//! namespace found by name and its services read with it, owned only when tagged; tags; the
//! asynchronous operations Cloud Map answers creates and deletes with.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Aws, Found, Poll, aws_err, observed, tag_delta, tags_value, wait_until};
use crate::apply::ProviderError;
use crate::kinds::{self, cloud_map_service, namespace};
use crate::model::{Address, Attrs, Kind, Observed};
use crate::spec::Spec;

impl Aws {
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
                (namespace::NAME.into(), json!(ns.name())),
                (namespace::VPC_ID.into(), json!(vpc)),
                (kinds::TAGS.into(), tags_value(&tags)),
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
                    let what = format!("Cloud Map service {name}");
                    // Adopted, or a conflict.
                    found
                        .named(self, expected.clone(), what, &tags)
                        .then_some(expected)
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
                (cloud_map_service::NAME.into(), json!(name)),
                (cloud_map_service::NAMESPACE_ID.into(), json!(ns_id)),
                (cloud_map_service::DNS_RECORDS.into(), Value::Array(records)),
                (kinds::TAGS.into(), tags_value(&tags)),
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

    pub(super) fn sd_tag_list(
        tags: &BTreeMap<String, String>,
    ) -> Vec<aws_sdk_servicediscovery::types::Tag> {
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
    pub(super) async fn sd_operation(
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
}
