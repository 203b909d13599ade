//! `adopt` (issue 13): a stack built by hand (or by another tool) taken over without
//! replacing it. Name-keyed kinds need nothing here: discovery finds them by name, and while
//! adopting, one that carries no prefect-ecs tag at all is taken for the stack's
//! (`Found::named`). EC2 resources have no name to be found by, so before discovery this
//! finds them by what identifies each: the VPC by its Name tag and CIDR, the rest inside it
//! (subnets by CIDR, the internet gateway by attachment, NAT gateways by their subnet and their
//! Elastic IPs through them, route tables by the subnets they serve, the security groups by
//! name, endpoints by service). What matches two ways is refused, naming the candidates.
//! Resources of another stack (any `prefect-ecs:stack` tag) are never candidates.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Tag;

use super::ec2::{filter, tag_map};
use super::{Aws, aws_err};
use crate::apply::ProviderError;
use crate::model::{Address, Kind, TAG_STACK};
use crate::spec::Spec;

/// What an adoption found beforehand: the VPC it takes over and the EC2 resources in it, by id.
#[derive(Debug, Clone, Default)]
pub(super) struct Adoption {
    vpc: Option<String>,
    ec2: BTreeMap<String, Address>,
}

/// Not the stack's nor another stack's: no prefect-ecs ownership tag.
fn untagged(tags: &[Tag]) -> bool {
    !tag_map(tags).contains_key(TAG_STACK)
}

impl Aws {
    pub(super) fn adopting(&self) -> bool {
        self.adoption.read().expect("adoption lock").is_some()
    }

    /// A resource this adoption may take: it is adopting, and nothing owns the resource.
    pub(super) fn adoptable(&self, tags: &BTreeMap<String, String>) -> bool {
        self.adopting() && !tags.contains_key(TAG_STACK)
    }

    pub(super) fn adopted_vpc(&self) -> Option<String> {
        self.adoption
            .read()
            .expect("adoption lock")
            .as_ref()?
            .vpc
            .clone()
    }

    pub(super) fn adopted_ec2(&self, id: &str) -> Option<Address> {
        let adoption = self.adoption.read().expect("adoption lock");
        adoption.as_ref()?.ec2.get(id).cloned()
    }

    /// Find the EC2 resources of `spec` built outside prefect-ecs, and adopt from here on:
    /// the discovery that follows takes them, and the untagged name-keyed resources, for the
    /// stack's. Returns what was matched, one line each (`vpc.main  vpc-… (Name …, CIDR …)`).
    pub async fn prepare_adoption(&self, spec: &Spec) -> Result<Vec<String>, ProviderError> {
        let mut adoption = Adoption::default();
        let mut matched = Vec::new();
        if spec.network.existing.is_none() {
            self.match_network(spec, &mut adoption, &mut matched)
                .await?;
        }
        *self.adoption.write().expect("adoption lock") = Some(adoption);
        Ok(matched)
    }

    async fn match_network(
        &self,
        spec: &Spec,
        adoption: &mut Adoption,
        matched: &mut Vec<String>,
    ) -> Result<(), ProviderError> {
        let net = &spec.network;
        let cidr = net.cidr.to_string();
        // A VPC of the stack's own already: its network is the stack's, nothing to adopt (and
        // discovery must keep finding it by the stack's tag).
        let ours = self
            .ec2
            .describe_vpcs()
            .filters(self.stack_filter())
            .send()
            .await
            .map_err(|e| aws_err("DescribeVpcs", e))?;
        if !ours.vpcs().is_empty() {
            return Ok(());
        }
        let vpcs = self
            .ec2
            .describe_vpcs()
            .filters(filter("tag:Name", [&net.vpc_name]))
            .filters(filter("cidr", [&cidr]))
            .send()
            .await
            .map_err(|e| aws_err("DescribeVpcs", e))?;
        let candidates: Vec<&str> = vpcs
            .vpcs()
            .iter()
            .filter(|v| untagged(v.tags()))
            .filter_map(|v| v.vpc_id())
            .collect();
        let vpc = match candidates.as_slice() {
            [] => return Ok(()),
            [one] => one.to_string(),
            many => {
                return Err(ProviderError(format!(
                    "adopt: {} VPCs are named {} with CIDR {cidr} ({}): which one is the stack's \
                     cannot be told; rename the others, or adopt none (a new VPC is made)",
                    many.len(),
                    net.vpc_name,
                    many.join(", ")
                )));
            }
        };
        let mut take = |address: Address, id: &str, what: String| {
            matched.push(format!("{address}  {id} ({what})"));
            adoption.ec2.insert(id.to_owned(), address);
        };
        take(
            Address::new(Kind::Vpc, "main"),
            &vpc,
            format!("Name {}, CIDR {cidr}", net.vpc_name),
        );
        let in_vpc = filter("vpc-id", [&vpc]);
        let (igws, subnets, nats, tables, groups, endpoints) = tokio::join!(
            self.ec2
                .describe_internet_gateways()
                .filters(filter("attachment.vpc-id", [&vpc]))
                .send(),
            self.ec2.describe_subnets().filters(in_vpc.clone()).send(),
            self.ec2
                .describe_nat_gateways()
                .filter(in_vpc.clone())
                .send(),
            self.ec2
                .describe_route_tables()
                .filters(in_vpc.clone())
                .send(),
            self.ec2
                .describe_security_groups()
                .filters(in_vpc.clone())
                .send(),
            self.ec2
                .describe_vpc_endpoints()
                .filters(in_vpc.clone())
                .send(),
        );
        let igws = igws.map_err(|e| aws_err("DescribeInternetGateways", e))?;
        if let [igw] = igws.internet_gateways()
            && let (Some(id), true) = (igw.internet_gateway_id(), untagged(igw.tags()))
        {
            take(
                Address::new(Kind::InternetGateway, "main"),
                id,
                "attached to the VPC".into(),
            );
        }
        let subnets = subnets.map_err(|e| aws_err("DescribeSubnets", e))?;
        // Subnet address by id, for what is found through subnets.
        let mut subnet_at: BTreeMap<String, Address> = BTreeMap::new();
        for (i, zone) in net.zones.iter().enumerate() {
            for (tier, block) in [("public", zone.public_cidr), ("private", zone.private_cidr)] {
                let block = block.to_string();
                let found = subnets
                    .subnets()
                    .iter()
                    .find(|s| s.cidr_block() == Some(block.as_str()) && untagged(s.tags()));
                if let Some(id) = found.and_then(|s| s.subnet_id()) {
                    let address = Address::indexed(Kind::Subnet, tier, i);
                    subnet_at.insert(id.to_owned(), address.clone());
                    take(address, id, format!("CIDR {block}"));
                }
            }
        }
        let nat_count = net.nat_count();
        let nats = nats.map_err(|e| aws_err("DescribeNatGateways", e))?;
        for i in 0..nat_count {
            let public = Address::indexed(Kind::Subnet, "public", i);
            let Some(subnet) = subnet_at
                .iter()
                .find(|(_, a)| **a == public)
                .map(|(id, _)| id.clone())
            else {
                continue;
            };
            let here: Vec<_> = nats
                .nat_gateways()
                .iter()
                .filter(|n| n.subnet_id() == Some(subnet.as_str()) && untagged(n.tags()))
                .filter(|n| matches!(n.state().map(|s| s.as_str()), Some("available" | "pending")))
                .collect();
            let nat = match here.as_slice() {
                [] => continue,
                [one] => one,
                many => {
                    let ids: Vec<&str> = many.iter().filter_map(|n| n.nat_gateway_id()).collect();
                    return Err(ProviderError(format!(
                        "adopt: subnet {subnet} ({public}) holds {} NAT gateways ({}): which one \
                         is nat[{i}] cannot be told; delete the extra ones first",
                        ids.len(),
                        ids.join(", ")
                    )));
                }
            };
            let Some(id) = nat.nat_gateway_id() else {
                continue;
            };
            take(
                Address::indexed(Kind::NatGateway, "nat", i),
                id,
                format!("in {public}"),
            );
            if let Some(alloc) = nat
                .nat_gateway_addresses()
                .iter()
                .find_map(|a| a.allocation_id())
            {
                take(
                    Address::indexed(Kind::Eip, "nat", i),
                    alloc,
                    format!("the address of nat_gateway.nat[{i}]"),
                );
            }
        }
        // A route table is the one explicitly associated with the first subnet it serves in
        // the spec (the VPC's main table is never the stack's: it cannot be deleted).
        let tables = tables.map_err(|e| aws_err("DescribeRouteTables", e))?;
        let table_of = |subnet: &Address| {
            let id = subnet_at.iter().find(|(_, a)| *a == subnet)?.0;
            tables.route_tables().iter().find(|t| {
                untagged(t.tags())
                    && !t.associations().iter().any(|a| a.main() == Some(true))
                    && t.associations()
                        .iter()
                        .any(|a| a.subnet_id() == Some(id.as_str()))
            })
        };
        // Each table once, and only a table that serves nothing but the spec's subnets: its
        // routes and associations become the stack's to set (and to delete on destroy).
        let mut wanted: Vec<(Address, Address)> = vec![(
            Address::new(Kind::RouteTable, "public"),
            Address::indexed(Kind::Subnet, "public", 0),
        )];
        for t in 0..net.private_tables() {
            let first = (0..net.zones.len()).find(|&z| net.private_table_of(z) == t);
            if let Some(z) = first {
                wanted.push((
                    Address::indexed(Kind::RouteTable, "private", t),
                    Address::indexed(Kind::Subnet, "private", z),
                ));
            }
        }
        let mut tables_taken: BTreeMap<String, Address> = BTreeMap::new();
        for (address, subnet) in wanted {
            let Some(table) = table_of(&subnet) else {
                continue;
            };
            let Some(id) = table.route_table_id() else {
                continue;
            };
            let others: Vec<&str> = table
                .associations()
                .iter()
                .filter_map(|a| a.subnet_id())
                .filter(|s| !subnet_at.contains_key(*s))
                .collect();
            if !others.is_empty() {
                return Err(ProviderError(format!(
                    "adopt: route table {id} ({address}) also serves {}, which the spec does not \
                     describe: adopting it would take over their routing; give those subnets a \
                     table of their own first",
                    others.join(", ")
                )));
            }
            if let Some(first) = tables_taken.insert(id.to_owned(), address.clone()) {
                return Err(ProviderError(format!(
                    "adopt: route table {id} serves both {first}'s and {address}'s subnets: which \
                     one it is cannot be told; give the public and private subnets tables of \
                     their own"
                )));
            }
            take(address, id, format!("associated with {subnet}"));
        }
        let groups = groups.map_err(|e| aws_err("DescribeSecurityGroups", e))?;
        for name in ["worker", "endpoints"] {
            let group = format!("{}-{name}", spec.name);
            let found = groups
                .security_groups()
                .iter()
                .find(|g| g.group_name() == Some(group.as_str()) && untagged(g.tags()));
            if let Some(id) = found.and_then(|g| g.group_id()) {
                take(
                    Address::new(Kind::SecurityGroup, name),
                    id,
                    format!("group {group}"),
                );
            }
        }
        let endpoints = endpoints.map_err(|e| aws_err("DescribeVpcEndpoints", e))?;
        let region = &self.region;
        let wanted = net
            .endpoints
            .s3
            .then_some("s3")
            .into_iter()
            .chain(net.endpoints.interface.iter().map(String::as_str));
        for service in wanted {
            let name = format!("com.amazonaws.{region}.{service}");
            let here: Vec<&str> = endpoints
                .vpc_endpoints()
                .iter()
                .filter(|e| e.service_name() == Some(name.as_str()) && untagged(e.tags()))
                .filter(|e| {
                    !matches!(
                        e.state()
                            .map(|s| s.as_str().to_ascii_lowercase())
                            .as_deref(),
                        Some("deleted" | "deleting" | "failed" | "rejected")
                    )
                })
                .filter_map(|e| e.vpc_endpoint_id())
                .collect();
            match here.as_slice() {
                [] => {}
                [id] => take(Address::new(Kind::VpcEndpoint, service), id, name.clone()),
                many => {
                    return Err(ProviderError(format!(
                        "adopt: the VPC has {} endpoints for {name} ({}): which one is the \
                         stack's cannot be told; delete the extra ones first",
                        many.len(),
                        many.join(", ")
                    )));
                }
            }
        }
        adoption.vpc = Some(vpc);
        Ok(())
    }
}
