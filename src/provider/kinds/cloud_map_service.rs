//! A worker's Cloud Map service. CreateService takes a creator request id. Read with its
//! namespace (`cloud_map.rs`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::super::{Aws, Found, already, attr, aws_err, request_token, retry_codes};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::cloud_map_service::{DNS_RECORDS, NAME, NAMESPACE_ID};
use crate::model::{Attrs, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct CloudMapService;

async fn create_cloud_map_service(aws: &Aws, attrs: &Attrs,
    tags: &BTreeMap<String, String>,
) -> Result<Outputs, ProviderError> {
    use aws_sdk_servicediscovery::types::{
        DnsConfig, DnsRecord, HealthCheckCustomConfig, RecordType, RoutingPolicy,
    };
    let name = attr(attrs, NAME)?;
    let ns = attr(attrs, NAMESPACE_ID)?;
    let records: Vec<DnsRecord> = attrs
        .get(DNS_RECORDS)
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
    let out = aws
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
        .set_tags(Some(Aws::sd_tag_list(tags)))
        .send()
        .await
        .map_err(|e| aws_err("CreateService", e))?;
    let s = out.service();
    let id = s.and_then(|s| s.id()).unwrap_or_default().to_string();
    let arn = s.and_then(|s| s.arn()).unwrap_or_default().to_string();
    Ok(Outputs::from([
        ("id".into(), id),
        ("arn".into(), arn),
        (NAME.into(), name.into()),
    ]))
}

async fn delete_cloud_map_service(aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
    // ECS deregisters the service's instances when the ECS service goes; until then: in use.
    retry_codes(
        aws.settings.deadline,
        &["ResourceInUse"],
        &format!("delete Cloud Map service {}", o.id),
        || async {
            aws.sd
                .delete_service()
                .id(&o.id)
                .send()
                .await
                .map(|_| ())
                .map(|_| ())
                .map_err(|e| aws_err("DeleteService", e))
                .or_else(already(&["ServiceNotFound"]))
        },
    )
    .await
}

impl Resource for CloudMapService {
    async fn discover(&self, _: &Aws, _: &Spec) -> Result<Found, ProviderError> {
        // Read with its namespace: `Namespace::discover`.
        Ok(Found::default())
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        create_cloud_map_service(aws, c.attrs, c.tags).await
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        aws.update_cloud_map_tags(u.attrs, u.observed).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        delete_cloud_map_service(aws, o).await
    }
}
