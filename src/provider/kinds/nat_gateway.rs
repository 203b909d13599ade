//! A NAT gateway: created with a client token, waited for until available. One that ends
//! `failed` is never usable: it is deleted and created again, up to three times.

use aws_sdk_ec2::types::ResourceType;
use serde_json::{Value, json};

use super::super::ec2::{Scope, spec_tags, sync_ec2_tags, tag_map};
use super::super::{
    Aws, Found, Poll, already, attr, aws_err, note, observed, request_token, tags_value, wait_until,
};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::TAGS;
use crate::kinds::nat_gateway::{ALLOCATION_ID, CONNECTIVITY_TYPE, SUBNET_ID};
use crate::kinds::internet_gateway;
use crate::model::{Attrs, Kind, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct NatGateway;

const NOT_FOUND: &[&str] = &["NatGatewayNotFound", "InvalidNatGatewayID.NotFound"];

async fn delete_nat(aws: &Aws, id: &str) -> Result<(), ProviderError> {
    aws.ec2
        .delete_nat_gateway()
        .nat_gateway_id(id)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| aws_err("DeleteNatGateway", e))
        .or_else(already(NOT_FOUND))?;
    Ok(())
}

impl Resource for NatGateway {
    async fn discover(&self, aws: &Aws, _: &Spec) -> Result<Found, ProviderError> {
        let nats = aws
            .ec2
            .describe_nat_gateways()
            .filter(aws.discovery_filter(Scope::Vpc))
            .send()
            .await
            .map_err(|e| aws_err("DescribeNatGateways", e))?;
        let mut found = Found::default();
        for n in nats.nat_gateways() {
            let state = n.state().map(|s| s.as_str()).unwrap_or_default();
            // Deleted NATs stay listed for an hour; they are gone for every purpose of ours.
            if matches!(state, "deleted" | "deleting") {
                continue;
            }
            let (Some(a), Some(id)) = (n.nat_gateway_id().and_then(|id| aws.ec2_address(n.tags(), id)), n.nat_gateway_id()) else {
                continue;
            };
            let alloc = n
                .nat_gateway_addresses()
                .iter()
                .find_map(|x| x.allocation_id())
                .map(String::from);
            let subnet = n.subnet_id().unwrap_or_default().to_string();
            let mut attrs = Attrs::from([
                (SUBNET_ID.into(), json!(subnet)),
                (ALLOCATION_ID.into(), json!(alloc)),
                (
                    CONNECTIVITY_TYPE.into(),
                    json!(n.connectivity_type().map(|c| c.as_str()).unwrap_or("public")),
                ),
                (TAGS.into(), tags_value(&tag_map(n.tags()))),
            ]);
            if state == "failed" {
                // A failed NAT is never usable: replacing it is the only repair.
                attrs.insert(
                    SUBNET_ID.into(),
                    json!(format!(
                        "(failed: {})",
                        n.failure_message().unwrap_or("no reason given")
                    )),
                );
            }
            let uses = [Some(subnet), alloc, n.vpc_id().map(String::from)]
                .into_iter()
                .flatten()
                .collect();
            found.resources.push(observed(a, id, &[], attrs, uses));
        }
        Ok(found)
    }

    /// Not a reference, but AWS's own order: the IGW cannot be detached while a NAT's public
    /// address is mapped in its VPC, so a NAT goes before the IGW of its VPC.
    fn uses(&self, o: &Observed, found: &[Observed]) -> Vec<String> {
        found
            .iter()
            .filter(|g| g.address.kind == Kind::InternetGateway)
            .filter(|g| {
                g.attrs
                    .get(internet_gateway::VPC_ID)
                    .and_then(Value::as_str)
                    .is_some_and(|vpc| o.uses.iter().any(|u| u == vpc))
            })
            .map(|g| g.id.clone())
            .collect()
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        let mut last_failure = String::new();
        for attempt in 1..=3 {
            let out = aws
                .ec2
                .create_nat_gateway()
                .subnet_id(attr(c.attrs, SUBNET_ID)?)
                .allocation_id(attr(c.attrs, ALLOCATION_ID)?)
                .client_token(request_token())
                .tag_specifications(spec_tags(ResourceType::Natgateway, c.tags))
                .send()
                .await
                .map_err(|e| aws_err("CreateNatGateway", e))?;
            let id = out
                .nat_gateway()
                .and_then(|n| n.nat_gateway_id())
                .unwrap_or_default()
                .to_string();
            let failure = std::cell::RefCell::new(None);
            wait_until(
                aws.settings.deadline,
                &format!("NAT gateway {id} available"),
                || async {
                    let r = aws
                        .ec2
                        .describe_nat_gateways()
                        .nat_gateway_ids(&id)
                        .send()
                        .await
                        .map_err(|e| aws_err("DescribeNatGateways", e))?;
                    let n = r.nat_gateways().first();
                    let state = n
                        .and_then(|n| n.state())
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default();
                    if state == "failed" {
                        *failure.borrow_mut() = Some(
                            n.and_then(|n| n.failure_message())
                                .unwrap_or("no reason given")
                                .to_string(),
                        );
                        return Ok(Poll::Done);
                    }
                    Ok(if state == "available" {
                        Poll::Done
                    } else {
                        Poll::Pending(state)
                    })
                },
            )
            .await?;
            let Some(why) = failure.into_inner() else {
                return Ok(Outputs::from([("id".into(), id)]));
            };
            note(&format!(
                "NAT gateway {id} failed ({why}); deleting it and creating another (attempt {attempt} of 3)"
            ));
            delete_nat(aws, &id).await?;
            last_failure = format!("NAT gateway {id} failed: {why}");
        }
        Err(ProviderError(format!("{last_failure} (3 attempts)")))
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        sync_ec2_tags(aws, u.attrs, u.observed).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        let id = o.id.as_str();
        delete_nat(aws, id).await?;
        wait_until(aws.settings.deadline, &format!("NAT gateway {id} deleted"), || async {
            let r = match aws.ec2.describe_nat_gateways().nat_gateway_ids(id).send().await {
                Err(e) => {
                    let e = aws_err("DescribeNatGateways", e);
                    return if e.is(&["NatGatewayNotFound"]) {
                        Ok(Poll::Done)
                    } else {
                        Err(e.into())
                    };
                }
                Ok(r) => r,
            };
            let state = r
                .nat_gateways()
                .first()
                .and_then(|n| n.state())
                .map(|s| s.as_str().to_string())
                .unwrap_or("deleted".into());
            Ok(if state == "deleted" {
                Poll::Done
            } else {
                Poll::Pending(state)
            })
        })
        .await
    }
}
