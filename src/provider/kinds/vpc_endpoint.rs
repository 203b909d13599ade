//! A VPC endpoint. CreateVpcEndpoint takes a client token; an interface endpoint is waited
//! for until `available` (its ENIs and private DNS take minutes) and, when deleted, until
//! `deleted` (its ENIs then linger a while, which the subnets' and security group's deletes
//! wait out as AWS's "in use"). moto keeps deleted endpoints listed, as AWS does for a while:
//! they are gone for every purpose of ours.

use aws_sdk_ec2::types::{ResourceType, VpcEndpoint as Ec2Endpoint, VpcEndpointType};
use serde_json::json;

use super::super::ec2::{Scope, spec_tags, sync_ec2_tags, tag_map};
use super::super::{
    Aws, Found, Poll, attr, attr_strings, aws_err, observed, request_token, tags_value,
    wait_until,
};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::TAGS;
use crate::kinds::vpc_endpoint::{
    ENDPOINT_TYPE, GATEWAY, INTERFACE, PRIVATE_DNS_ENABLED, ROUTE_TABLE_IDS, SECURITY_GROUP_IDS,
    SERVICE_NAME, SUBNET_IDS, VPC_ID,
};
use crate::model::{Attrs, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct VpcEndpoint;

const NOT_FOUND: &[&str] = &[
    "InvalidVpcEndpointId.NotFound",
    "InvalidVpcEndpoint.NotFound",
];

/// AWS spells endpoint states in lower case (`available`); the SDK's enum has both spellings.
fn state(e: &Ec2Endpoint) -> String {
    e.state()
        .map(|s| s.as_str().to_ascii_lowercase())
        .unwrap_or_default()
}

fn gone(state: &str) -> bool {
    matches!(state, "deleted" | "deleting" | "rejected" | "expired")
}

/// The attributes of `e` its type has: a gateway's route tables, an interface's subnets,
/// security groups and private DNS.
fn attributes(e: &Ec2Endpoint) -> Attrs {
    let kind = e
        .vpc_endpoint_type()
        .map(|t| t.as_str().to_string())
        .unwrap_or_default();
    let mut attrs = Attrs::from([
        (VPC_ID.into(), json!(e.vpc_id())),
        (SERVICE_NAME.into(), json!(e.service_name())),
        (ENDPOINT_TYPE.into(), json!(kind)),
        (TAGS.into(), tags_value(&tag_map(e.tags()))),
    ]);
    if kind.eq_ignore_ascii_case(GATEWAY) {
        attrs.insert(ROUTE_TABLE_IDS.into(), json!(e.route_table_ids()));
    } else {
        let groups: Vec<&str> = e.groups().iter().filter_map(|g| g.group_id()).collect();
        attrs.insert(SUBNET_IDS.into(), json!(e.subnet_ids()));
        attrs.insert(SECURITY_GROUP_IDS.into(), json!(groups));
        attrs.insert(
            PRIVATE_DNS_ENABLED.into(),
            json!(e.private_dns_enabled().unwrap_or(false)),
        );
    }
    if state(e) == "failed" {
        // A failed endpoint is never usable: replacing it is the only repair.
        attrs.insert(
            SERVICE_NAME.into(),
            json!(format!("(failed: {})", last_error(e))),
        );
    }
    attrs
}

/// Why AWS says the endpoint failed.
fn last_error(e: &Ec2Endpoint) -> &str {
    e.last_error()
        .and_then(|l| l.message())
        .unwrap_or("no reason given")
}

/// The endpoint `id` as AWS describes it now; `None` once it is not found.
async fn describe(aws: &Aws, id: &str) -> Result<Option<Ec2Endpoint>, ProviderError> {
    match aws.ec2.describe_vpc_endpoints().vpc_endpoint_ids(id).send().await {
        Ok(r) => Ok(r.vpc_endpoints().first().cloned()),
        Err(e) => {
            let e = aws_err("DescribeVpcEndpoints", e);
            if e.is(NOT_FOUND) {
                Ok(None)
            } else {
                Err(e.into())
            }
        }
    }
}

async fn wait_for(aws: &Aws, id: &str, until: &'static str) -> Result<(), ProviderError> {
    wait_until(
        aws.settings.deadline,
        &format!("VPC endpoint {id} {until}"),
        || async {
            let Some(e) = describe(aws, id).await? else {
                // Gone is what a delete waits for; waiting for it to be available, it is a
                // failed read (retried a few times, as AWS may not list a new one at once).
                return if until == "deleted" {
                    Ok(Poll::Done)
                } else {
                    Err(ProviderError(format!("VPC endpoint {id} not found")))
                };
            };
            let now = state(&e);
            if now == until {
                return Ok(Poll::Done);
            }
            if until == "available" && (now == "failed" || gone(&now)) {
                let why = last_error(&e);
                return Ok(Poll::Failed(format!("VPC endpoint {id} is {now}: {why}")));
            }
            Ok(Poll::Pending(now))
        },
    )
    .await
}

/// The endpoint is deleting, deleted or gone.
async fn deleting(aws: &Aws, id: &str) -> Result<bool, ProviderError> {
    Ok(describe(aws, id).await?.is_none_or(|e| gone(&state(&e))))
}

impl Resource for VpcEndpoint {
    async fn discover(&self, aws: &Aws, _: &Spec) -> Result<Found, ProviderError> {
        let out = aws
            .ec2
            .describe_vpc_endpoints()
            .filters(aws.discovery_filter(Scope::Vpc))
            .send()
            .await
            .map_err(|e| aws_err("DescribeVpcEndpoints", e))?;
        let mut found = Found::default();
        for e in out.vpc_endpoints() {
            if gone(&state(e)) {
                continue;
            }
            let (Some(a), Some(id)) = (e.vpc_endpoint_id().and_then(|id| aws.ec2_address(e.tags(), id)), e.vpc_endpoint_id()) else {
                continue;
            };
            let uses = e
                .vpc_id()
                .into_iter()
                .chain(e.route_table_ids().iter().map(String::as_str))
                .chain(e.subnet_ids().iter().map(String::as_str))
                .chain(e.groups().iter().filter_map(|g| g.group_id()))
                .map(String::from)
                .collect();
            found
                .resources
                .push(observed(a, id, &[], attributes(e), uses));
        }
        Ok(found)
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        let interface = attr(c.attrs, ENDPOINT_TYPE)? == INTERFACE;
        let mut call = aws
            .ec2
            .create_vpc_endpoint()
            .vpc_id(attr(c.attrs, VPC_ID)?)
            .service_name(attr(c.attrs, SERVICE_NAME)?)
            .tag_specifications(spec_tags(ResourceType::VpcEndpoint, c.tags))
            // The SDK resends it on its retries: a lost answer makes no second endpoint.
            .client_token(request_token());
        if interface {
            call = call
                .vpc_endpoint_type(VpcEndpointType::Interface)
                .set_subnet_ids(Some(attr_strings(c.attrs.get(SUBNET_IDS))))
                .set_security_group_ids(Some(attr_strings(c.attrs.get(SECURITY_GROUP_IDS))))
                .private_dns_enabled(
                    c.attrs
                        .get(PRIVATE_DNS_ENABLED)
                        .and_then(serde_json::Value::as_bool)
                        .unwrap_or(true),
                );
        } else {
            call = call
                .vpc_endpoint_type(VpcEndpointType::Gateway)
                .set_route_table_ids(Some(attr_strings(c.attrs.get(ROUTE_TABLE_IDS))));
        }
        let out = call
            .send()
            .await
            .map_err(|e| aws_err("CreateVpcEndpoint", e))?;
        let id = out
            .vpc_endpoint()
            .and_then(|e| e.vpc_endpoint_id())
            .unwrap_or_default()
            .to_string();
        // A gateway endpoint is usually available in the create's own answer.
        if out.vpc_endpoint().map(state).as_deref() != Some("available") {
            wait_for(aws, &id, "available").await?;
        }
        Ok(Outputs::from([("id".into(), id)]))
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        let (attrs, o) = (u.attrs, u.observed);
        let delta = |key: &str| {
            let (want, have) = (attr_strings(attrs.get(key)), attr_strings(o.attrs.get(key)));
            let add: Vec<String> = want.iter().filter(|w| !have.contains(w)).cloned().collect();
            let remove: Vec<String> = have.iter().filter(|h| !want.contains(h)).cloned().collect();
            (add, remove)
        };
        let (add_tables, remove_tables) = delta(ROUTE_TABLE_IDS);
        let (add_subnets, remove_subnets) = delta(SUBNET_IDS);
        let (add_groups, remove_groups) = delta(SECURITY_GROUP_IDS);
        let dns = attrs
            .get(PRIVATE_DNS_ENABLED)
            .filter(|want| o.attrs.get(PRIVATE_DNS_ENABLED) != Some(*want))
            .and_then(serde_json::Value::as_bool);
        let nonempty = |v: Vec<String>| (!v.is_empty()).then_some(v);
        let changes = [
            &add_tables,
            &remove_tables,
            &add_subnets,
            &remove_subnets,
            &add_groups,
            &remove_groups,
        ]
        .iter()
        .any(|v| !v.is_empty())
            || dns.is_some();
        if changes {
            // Each list only when it has ids: AWS refuses an empty one. Sent again after its
            // answer was lost, it finds the lists as wanted and changes nothing.
            aws.ec2
                .modify_vpc_endpoint()
                .vpc_endpoint_id(&o.id)
                .set_add_route_table_ids(nonempty(add_tables))
                .set_remove_route_table_ids(nonempty(remove_tables))
                .set_add_subnet_ids(nonempty(add_subnets))
                .set_remove_subnet_ids(nonempty(remove_subnets))
                .set_add_security_group_ids(nonempty(add_groups))
                .set_remove_security_group_ids(nonempty(remove_groups))
                .set_private_dns_enabled(dns)
                .send()
                .await
                .map_err(|e| aws_err("ModifyVpcEndpoint", e))?;
            // New subnets get their ENIs the way a new endpoint does.
            wait_for(aws, &o.id, "available").await?;
        }
        sync_ec2_tags(aws, attrs, o).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        let out = aws
            .ec2
            .delete_vpc_endpoints()
            .vpc_endpoint_ids(&o.id)
            .send()
            .await
            .map_err(|e| aws_err("DeleteVpcEndpoints", e));
        match out {
            Err(e) if e.is(NOT_FOUND) => return Ok(()),
            // Sent again after its answer was lost, the delete may fail on what the first one
            // already did: the endpoint's own state says whether it is on its way out.
            Err(e) if deleting(aws, &o.id).await? => {
                tracing::debug!("DeleteVpcEndpoints {} failed ({e:?}), but it is deleting", o.id);
            }
            Err(e) => return Err(e.into()),
            // A batch call: a refusal comes back as an item, not as an error.
            Ok(out) => {
                if let Some(failed) = out.unsuccessful().first() {
                    let error = failed.error();
                    let code = error.and_then(|e| e.code()).unwrap_or_default();
                    if NOT_FOUND.contains(&code) {
                        return Ok(());
                    }
                    let message = error.and_then(|e| e.message()).unwrap_or_default();
                    return Err(ProviderError(format!(
                        "DeleteVpcEndpoints refused {}: {code}: {message}",
                        o.id
                    )));
                }
            }
        }
        wait_for(aws, &o.id, "deleted").await
    }
}
