//! What the EC2 kinds (`kinds/vpc.rs` … `kinds/security_group.rs`) share: they are found by
//! the stack's tag filter (one call per kind, all in parallel) and always re-checked
//! client-side, tagged in the create call, and deleted through AWS's "still in use" answers.

use std::collections::BTreeMap;
use std::future::Future;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use super::{Aws, AwsError, Found, Ownership, aws_err, retry_codes, tag_delta};
use crate::apply::ProviderError;
use crate::model::{Address, Attrs, Observed, TAG_STACK};

/// How an EC2 kind is scoped to one VPC, for an adoption's discovery.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scope {
    /// `vpc-id`.
    Vpc,
    /// `attachment.vpc-id` (internet gateways).
    Attachment,
    /// The account's VPC addresses (Elastic IPs belong to no VPC).
    Account,
}

/// AWS's "still in use" answers: retried until the user of the resource is gone.
const IN_USE: &[&str] = &["DependencyViolation", "InvalidIPAddress.InUse"];

pub(super) fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

pub(super) fn spec_tags(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

/// The id of the resource found at `address`: what a create whose answer was lost may have
/// made. Looked for only after a failed create, so rare.
pub(super) fn at_address(found: Found, address: &Address) -> Option<String> {
    found
        .resources
        .into_iter()
        .find(|o| &o.address == address)
        .map(|o| o.id)
}

/// A delete (or detach) retried while AWS says the resource is still in use.
pub(super) async fn delete_ec2<F, Fut>(aws: &Aws, o: &Observed, op: F) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), AwsError>>,
{
    let what = format!("delete {} ({})", o.address, o.id);
    retry_codes(aws.settings.deadline, IN_USE, &what, op).await
}

pub(super) async fn sync_ec2_tags(
    aws: &Aws,
    attrs: &Attrs,
    o: &Observed,
) -> Result<(), ProviderError> {
    let (set, remove) = tag_delta(attrs, o);
    if !set.is_empty() {
        aws.ec2
            .create_tags()
            .resources(&o.id)
            .set_tags(Some(
                set.iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| aws_err("CreateTags", e))?;
    }
    if !remove.is_empty() {
        aws.ec2
            .delete_tags()
            .resources(&o.id)
            .set_tags(Some(
                remove
                    .iter()
                    .map(|k| Tag::builder().key(k).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| aws_err("DeleteTags", e))?;
    }
    Ok(())
}

impl Aws {
    pub(super) fn stack_filter(&self) -> Filter {
        filter(&format!("tag:{TAG_STACK}"), [&self.settings.stack])
    }

    /// What an EC2 kind's discovery asks for: the stack's tag; when adopting a VPC (`adopt`),
    /// everything of that VPC (`scope` says how the kind names it), sorted out client-side by
    /// [`Aws::ec2_address`].
    pub(super) fn discovery_filter(&self, scope: Scope) -> Filter {
        let Some(vpc) = self.adopted_vpc() else {
            return self.stack_filter();
        };
        match scope {
            Scope::Vpc => filter("vpc-id", [vpc]),
            Scope::Attachment => filter("attachment.vpc-id", [vpc]),
            Scope::Account => filter("domain", ["vpc"]),
        }
    }

    /// The address of an EC2 resource if it is this stack's (tag filters are not trusted
    /// alone), or the one an adoption found it to be.
    pub(super) fn ec2_address(&self, tags: &[Tag], id: &str) -> Option<Address> {
        let tags = tag_map(tags);
        match self.ownership(&tags) {
            Ownership::Ours(a) => Some(a),
            Ownership::Foreign(_) if self.adoptable(&tags) => self.adopted_ec2(id),
            Ownership::Foreign(_) => None,
        }
    }
}

/// An EC2 filter: `name` is any of `values`.
pub(super) fn filter<S: Into<String>>(name: &str, values: impl IntoIterator<Item = S>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(Into::into).collect()))
        .build()
}

impl Aws {
    /// An existing VPC read, never changed (issue 13): the VPC and its DNS attributes, the
    /// listed subnets (by filter: a missing one is absent, not an error), the VPC's route
    /// tables and NAT gateways. One wave of calls.
    pub(super) async fn read_network(
        &self,
        e: &crate::spec::ExistingNetwork,
    ) -> Result<crate::network::NetworkFacts, ProviderError> {
        use crate::network::{NetworkFacts, RouteTableFacts, SubnetFacts, VpcFacts};
        use aws_sdk_ec2::types::VpcAttributeName;
        let attribute = |name: VpcAttributeName| {
            self.ec2
                .describe_vpc_attribute()
                .vpc_id(&e.vpc_id)
                .attribute(name)
                .send()
        };
        let (vpcs, subnets, tables, nats) = tokio::join!(
            self.ec2
                .describe_vpcs()
                .filters(filter("vpc-id", [&e.vpc_id]))
                .send(),
            self.ec2
                .describe_subnets()
                .filters(filter("subnet-id", &e.subnet_ids))
                .send(),
            self.ec2
                .describe_route_tables()
                .filters(filter("vpc-id", [&e.vpc_id]))
                .send(),
            self.ec2
                .describe_nat_gateways()
                .filter(filter("vpc-id", [&e.vpc_id]))
                .send(),
        );
        let vpcs = vpcs.map_err(|e| aws_err("DescribeVpcs", e))?;
        let mut facts = NetworkFacts::default();
        if vpcs.vpcs().iter().any(|v| v.vpc_id() == Some(&e.vpc_id)) {
            let (support, hostnames) = tokio::join!(
                attribute(VpcAttributeName::EnableDnsSupport),
                attribute(VpcAttributeName::EnableDnsHostnames)
            );
            let support = support.map_err(|e| aws_err("DescribeVpcAttribute", e))?;
            let hostnames = hostnames.map_err(|e| aws_err("DescribeVpcAttribute", e))?;
            facts.vpc = Some(VpcFacts {
                id: e.vpc_id.clone(),
                dns_support: support
                    .enable_dns_support()
                    .and_then(|a| a.value())
                    .unwrap_or(false),
                dns_hostnames: hostnames
                    .enable_dns_hostnames()
                    .and_then(|a| a.value())
                    .unwrap_or(false),
            });
        }
        let subnets = subnets.map_err(|e| aws_err("DescribeSubnets", e))?;
        facts.subnets = subnets
            .subnets()
            .iter()
            .map(|s| SubnetFacts {
                id: s.subnet_id().unwrap_or_default().to_owned(),
                vpc_id: s.vpc_id().unwrap_or_default().to_owned(),
                az: s.availability_zone().unwrap_or_default().to_owned(),
                available_ips: s.available_ip_address_count().unwrap_or_default().max(0) as u32,
            })
            .collect();
        let tables = tables.map_err(|e| aws_err("DescribeRouteTables", e))?;
        facts.route_tables = tables
            .route_tables()
            .iter()
            .map(|t| {
                let default = t.routes().iter().find(|r| {
                    r.destination_cidr_block() == Some("0.0.0.0/0")
                        && r.state().map(|s| s.as_str()) != Some("blackhole")
                });
                let target = default.and_then(|r| {
                    r.nat_gateway_id()
                        .or(r.gateway_id())
                        .or(r.transit_gateway_id())
                        .or(r.network_interface_id())
                        .or(r.vpc_peering_connection_id())
                        .map(str::to_owned)
                });
                RouteTableFacts {
                    id: t.route_table_id().unwrap_or_default().to_owned(),
                    main: t.associations().iter().any(|a| a.main() == Some(true)),
                    subnet_ids: t
                        .associations()
                        .iter()
                        .filter_map(|a| a.subnet_id().map(str::to_owned))
                        .collect(),
                    default_target: target,
                }
            })
            .collect();
        let nats = nats.map_err(|e| aws_err("DescribeNatGateways", e))?;
        facts.nat_gateways = nats
            .nat_gateways()
            .iter()
            .filter_map(|n| {
                Some((
                    n.nat_gateway_id()?.to_owned(),
                    n.state()?.as_str().to_owned(),
                ))
            })
            .collect();
        Ok(facts)
    }

    /// `private_subnet_tags` / `public_subnet_tags`: the existing VPC's subnets carrying every
    /// one of the tags, found before anything is planned and used as if listed (sorted).
    pub async fn resolve_tagged_subnets(
        &self,
        spec: &mut crate::spec::Spec,
    ) -> Result<(), ProviderError> {
        let Some(e) = spec.network.existing.as_mut() else {
            return Ok(());
        };
        if e.subnet_tags.is_empty() {
            return Ok(());
        }
        let mut call = self
            .ec2
            .describe_subnets()
            .filters(filter("vpc-id", [&e.vpc_id]));
        for (k, v) in &e.subnet_tags {
            call = call.filters(filter(&format!("tag:{k}"), [v]));
        }
        let out = call
            .send()
            .await
            .map_err(|e| aws_err("DescribeSubnets", e))?;
        let mut ids: Vec<String> = out
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_id().map(str::to_owned))
            .collect();
        ids.sort();
        if ids.is_empty() {
            let tags: Vec<String> = e
                .subnet_tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            return Err(ProviderError(format!(
                "no subnet of {} is tagged {}: tag the subnets the workers run in, or list them \
                 by id",
                e.vpc_id,
                tags.join(", ")
            )));
        }
        if ids.len() > 16 {
            return Err(ProviderError(format!(
                "{} subnets of {} carry the tags; ECS takes at most 16 for a service: tag fewer, \
                 or list them by id",
                ids.len(),
                e.vpc_id
            )));
        }
        e.subnet_ids = ids;
        Ok(())
    }
}
