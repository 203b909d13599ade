//! VPC, subnets, gateways, addresses, route tables, security groups: found by tag filters
//! (one call per type, all in parallel), always re-checked client-side.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    AttributeBooleanValue, DomainType, Filter, IpPermission, IpRange, ResourceType, Tag,
    TagSpecification,
};
use serde_json::{Value, json};

use super::{
    Aws, Found, Ownership, Poll, attr, attr_strings, aws_err, changed, create_untokened, observed,
    request_token, retry_codes, tag_delta, tags_value, wait_until,
};
use crate::apply::ProviderError;
use crate::model::{Address, Attrs, Kind, Observed, Outputs, TAG_STACK};

/// AWS's "still in use" answers: retried until the user of the resource is gone.
const IN_USE: &[&str] = &["DependencyViolation", "InvalidIPAddress.InUse"];

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

fn spec_tags(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

fn rule_values(perms: &[IpPermission]) -> Value {
    let mut rules = Vec::new();
    for p in perms {
        let protocol = p.ip_protocol().unwrap_or("-1");
        let (from, to) = if protocol == "-1" {
            (Value::Null, Value::Null)
        } else {
            (json!(p.from_port()), json!(p.to_port()))
        };
        for r in p.ip_ranges() {
            rules.push(json!({"protocol": protocol, "from_port": from, "to_port": to, "cidr": r.cidr_ip()}));
        }
        for r in p.ipv6_ranges() {
            rules.push(json!({"protocol": protocol, "from_port": from, "to_port": to, "cidr": r.cidr_ipv6()}));
        }
        for g in p.user_id_group_pairs() {
            rules.push(json!({"protocol": protocol, "from_port": from, "to_port": to, "source_group": g.group_id()}));
        }
    }
    Value::Array(rules)
}

fn permission(rule: &Value) -> IpPermission {
    let mut p = IpPermission::builder().ip_protocol(rule["protocol"].as_str().unwrap_or("-1"));
    if let (Some(f), Some(t)) = (rule["from_port"].as_i64(), rule["to_port"].as_i64()) {
        p = p.from_port(f as i32).to_port(t as i32);
    }
    if let Some(c) = rule["cidr"].as_str() {
        if c.contains(':') {
            p = p.ipv6_ranges(
                aws_sdk_ec2::types::Ipv6Range::builder()
                    .cidr_ipv6(c)
                    .build(),
            );
        } else {
            p = p.ip_ranges(IpRange::builder().cidr_ip(c).build());
        }
    }
    if let Some(g) = rule["source_group"].as_str() {
        p = p.user_id_group_pairs(
            aws_sdk_ec2::types::UserIdGroupPair::builder()
                .group_id(g)
                .build(),
        );
    }
    p.build()
}

impl Aws {
    fn stack_filter(&self) -> Filter {
        Filter::builder()
            .name(format!("tag:{TAG_STACK}"))
            .values(&self.settings.stack)
            .build()
    }

    /// The address of an EC2 resource if it is this stack's (tag filters are not trusted alone).
    pub(super) fn ec2_address(&self, tags: &[Tag]) -> Option<Address> {
        match self.ownership(&tag_map(tags)) {
            Ownership::Ours(a) => Some(a),
            Ownership::Foreign(_) => None,
        }
    }

    pub(super) async fn discover_ec2(&self) -> Result<Found, ProviderError> {
        let f = self.stack_filter();
        let (vpcs, subnets, igws, eips, nats, rts, sgs) = tokio::join!(
            self.ec2.describe_vpcs().filters(f.clone()).send(),
            self.ec2.describe_subnets().filters(f.clone()).send(),
            self.ec2
                .describe_internet_gateways()
                .filters(f.clone())
                .send(),
            self.ec2.describe_addresses().filters(f.clone()).send(),
            self.ec2.describe_nat_gateways().filter(f.clone()).send(),
            self.ec2.describe_route_tables().filters(f.clone()).send(),
            self.ec2
                .describe_security_groups()
                .filters(f.clone())
                .send(),
        );
        let mut found = Found::default();
        let mut vpc_list = Vec::new();
        for v in vpcs.map_err(|e| aws_err("DescribeVpcs", e))?.vpcs() {
            if let (Some(a), Some(id)) = (self.ec2_address(v.tags()), v.vpc_id()) {
                vpc_list.push((
                    a,
                    id.to_string(),
                    v.cidr_block().unwrap_or_default().to_string(),
                    tag_map(v.tags()),
                ));
            }
        }
        // DNS attributes are one call each; the VPCs are read in parallel.
        let attrs =
            futures::future::join_all(vpc_list.iter().map(|(_, id, _, _)| self.vpc_dns(id))).await;
        for ((a, id, cidr, tags), dns) in vpc_list.into_iter().zip(attrs) {
            let (support, hostnames) = dns?;
            let attrs = Attrs::from([
                ("cidr_block".into(), json!(cidr)),
                ("enable_dns_support".into(), json!(support)),
                ("enable_dns_hostnames".into(), json!(hostnames)),
                ("tags".into(), tags_value(&tags)),
            ]);
            found.resources.push(observed(a, &id, &[], attrs, vec![]));
        }
        for s in subnets
            .map_err(|e| aws_err("DescribeSubnets", e))?
            .subnets()
        {
            let (Some(a), Some(id)) = (self.ec2_address(s.tags()), s.subnet_id()) else {
                continue;
            };
            let vpc = s.vpc_id().unwrap_or_default();
            let attrs = Attrs::from([
                ("vpc_id".into(), json!(vpc)),
                ("cidr_block".into(), json!(s.cidr_block())),
                ("availability_zone".into(), json!(s.availability_zone())),
                (
                    "map_public_ip_on_launch".into(),
                    json!(s.map_public_ip_on_launch().unwrap_or(false)),
                ),
                ("tags".into(), tags_value(&tag_map(s.tags()))),
            ]);
            found
                .resources
                .push(observed(a, id, &[], attrs, vec![vpc.into()]));
        }
        let mut igw_ids = Vec::new();
        for g in igws
            .map_err(|e| aws_err("DescribeInternetGateways", e))?
            .internet_gateways()
        {
            let (Some(a), Some(id)) = (self.ec2_address(g.tags()), g.internet_gateway_id()) else {
                continue;
            };
            let vpc = g
                .attachments()
                .iter()
                .find_map(|at| at.vpc_id())
                .map(String::from);
            igw_ids.extend(vpc.clone().map(|v| (v, id.to_string())));
            let attrs = Attrs::from([
                ("vpc_id".into(), json!(vpc)),
                ("tags".into(), tags_value(&tag_map(g.tags()))),
            ]);
            found
                .resources
                .push(observed(a, id, &[], attrs, vpc.into_iter().collect()));
        }
        for e in eips
            .map_err(|e| aws_err("DescribeAddresses", e))?
            .addresses()
        {
            let (Some(a), Some(id)) = (self.ec2_address(e.tags()), e.allocation_id()) else {
                continue;
            };
            let domain = e.domain().map(|d| d.as_str().to_string());
            let attrs = Attrs::from([
                ("domain".into(), json!(domain)),
                ("tags".into(), tags_value(&tag_map(e.tags()))),
            ]);
            let mut o = observed(a, id, &[], attrs, vec![]);
            if let Some(assoc) = e.association_id() {
                o.outputs.insert("association_id".into(), assoc.into());
            }
            found.resources.push(o);
        }
        for n in nats
            .map_err(|e| aws_err("DescribeNatGateways", e))?
            .nat_gateways()
        {
            let state = n.state().map(|s| s.as_str()).unwrap_or_default();
            // Deleted NATs stay listed for an hour; they are gone for every purpose of ours.
            if matches!(state, "deleted" | "deleting") {
                continue;
            }
            let (Some(a), Some(id)) = (self.ec2_address(n.tags()), n.nat_gateway_id()) else {
                continue;
            };
            let alloc = n
                .nat_gateway_addresses()
                .iter()
                .find_map(|x| x.allocation_id())
                .map(String::from);
            let subnet = n.subnet_id().unwrap_or_default().to_string();
            let mut attrs = Attrs::from([
                ("subnet_id".into(), json!(subnet)),
                ("allocation_id".into(), json!(alloc)),
                (
                    "connectivity_type".into(),
                    json!(
                        n.connectivity_type()
                            .map(|c| c.as_str())
                            .unwrap_or("public")
                    ),
                ),
                ("tags".into(), tags_value(&tag_map(n.tags()))),
            ]);
            if state == "failed" {
                // A failed NAT is never usable: replacing it is the only repair.
                attrs.insert(
                    "subnet_id".into(),
                    json!(format!(
                        "(failed: {})",
                        n.failure_message().unwrap_or("no reason given")
                    )),
                );
            }
            let mut uses: Vec<String> = [Some(subnet), alloc, n.vpc_id().map(String::from)]
                .into_iter()
                .flatten()
                .collect();
            // Not a reference, but AWS's own order: the IGW cannot be detached while a NAT's
            // public address is mapped in its VPC, so a NAT goes before the IGW.
            uses.extend(
                igw_ids
                    .iter()
                    .filter(|(vpc, _)| Some(vpc.as_str()) == n.vpc_id())
                    .map(|(_, igw)| igw.clone()),
            );
            found.resources.push(observed(a, id, &[], attrs, uses));
        }
        for rt in rts
            .map_err(|e| aws_err("DescribeRouteTables", e))?
            .route_tables()
        {
            let (Some(a), Some(id)) = (self.ec2_address(rt.tags()), rt.route_table_id()) else {
                continue;
            };
            let mut routes = Vec::new();
            let mut uses: Vec<String> = rt.vpc_id().map(String::from).into_iter().collect();
            for r in rt.routes() {
                if r.origin().map(|o| o.as_str()) != Some("CreateRoute") {
                    continue;
                }
                let target = r
                    .nat_gateway_id()
                    .or(r.gateway_id())
                    .unwrap_or("(blackhole)");
                routes.push(json!({"destination": r.destination_cidr_block(), "target": target}));
                uses.push(target.into());
            }
            let mut o = observed(a, id, &[], Attrs::new(), vec![]);
            let mut subnets = Vec::new();
            for assoc in rt.associations() {
                if let (Some(s), Some(aid)) =
                    (assoc.subnet_id(), assoc.route_table_association_id())
                {
                    subnets.push(json!(s));
                    uses.push(s.into());
                    o.outputs.insert(format!("association:{s}"), aid.into());
                }
            }
            o.attrs = Attrs::from([
                ("vpc_id".into(), json!(rt.vpc_id())),
                ("routes".into(), Value::Array(routes)),
                ("subnet_ids".into(), Value::Array(subnets)),
                ("tags".into(), tags_value(&tag_map(rt.tags()))),
            ]);
            o.uses = uses;
            found.resources.push(o);
        }
        for g in sgs
            .map_err(|e| aws_err("DescribeSecurityGroups", e))?
            .security_groups()
        {
            let (Some(a), Some(id)) = (self.ec2_address(g.tags()), g.group_id()) else {
                continue;
            };
            let attrs = Attrs::from([
                ("vpc_id".into(), json!(g.vpc_id())),
                ("group_name".into(), json!(g.group_name())),
                ("description".into(), json!(g.description())),
                ("ingress".into(), rule_values(g.ip_permissions())),
                ("egress".into(), rule_values(g.ip_permissions_egress())),
                ("tags".into(), tags_value(&tag_map(g.tags()))),
            ]);
            found.resources.push(observed(
                a,
                id,
                &[],
                attrs,
                g.vpc_id().map(String::from).into_iter().collect(),
            ));
        }
        Ok(found)
    }

    async fn vpc_dns(&self, id: &str) -> Result<(bool, bool), ProviderError> {
        use aws_sdk_ec2::types::VpcAttributeName;
        let (s, h) = tokio::join!(
            self.ec2
                .describe_vpc_attribute()
                .vpc_id(id)
                .attribute(VpcAttributeName::EnableDnsSupport)
                .send(),
            self.ec2
                .describe_vpc_attribute()
                .vpc_id(id)
                .attribute(VpcAttributeName::EnableDnsHostnames)
                .send(),
        );
        let s = s.map_err(|e| aws_err("DescribeVpcAttribute", e))?;
        let h = h.map_err(|e| aws_err("DescribeVpcAttribute", e))?;
        Ok((
            s.enable_dns_support()
                .and_then(|v| v.value())
                .unwrap_or(false),
            h.enable_dns_hostnames()
                .and_then(|v| v.value())
                .unwrap_or(false),
        ))
    }

    async fn wait_vpc_available(&self, id: &str) -> Result<(), ProviderError> {
        wait_until(
            self.settings.deadline,
            &format!("VPC {id} available"),
            || async {
                let r = self
                    .ec2
                    .describe_vpcs()
                    .vpc_ids(id)
                    .send()
                    .await
                    .map_err(|e| aws_err("DescribeVpcs", e))?;
                let state = r
                    .vpcs()
                    .first()
                    .and_then(|v| v.state())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default();
                Ok(if state == "available" {
                    Poll::Done
                } else {
                    Poll::Pending(state)
                })
            },
        )
        .await
    }

    /// Sets both DNS attributes; on a `fresh` VPC only those that differ from AWS's defaults for
    /// a new VPC (DNS support on, DNS hostnames off).
    async fn set_vpc_dns(&self, id: &str, attrs: &Attrs, fresh: bool) -> Result<(), ProviderError> {
        let want = |k: &str| attrs.get(k).and_then(Value::as_bool).unwrap_or(false);
        let on = |v: bool| AttributeBooleanValue::builder().value(v).build();
        let (support, hostnames) = (want("enable_dns_support"), want("enable_dns_hostnames"));
        // AWS takes one attribute per call; the two calls can overlap.
        let set_support = async {
            if fresh && support {
                return Ok(());
            }
            self.ec2
                .modify_vpc_attribute()
                .vpc_id(id)
                .enable_dns_support(on(support))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_err("ModifyVpcAttribute", e))
        };
        let set_hostnames = async {
            if fresh && !hostnames {
                return Ok(());
            }
            self.ec2
                .modify_vpc_attribute()
                .vpc_id(id)
                .enable_dns_hostnames(on(hostnames))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_err("ModifyVpcAttribute", e))
        };
        let (a, b) = tokio::join!(set_support, set_hostnames);
        a?;
        b?;
        Ok(())
    }

    pub(super) async fn create_ec2(
        &self,
        address: &Address,
        attrs: &Attrs,
        tags: &BTreeMap<String, String>,
    ) -> Result<Outputs, ProviderError> {
        let id = match address.kind {
            Kind::Vpc => {
                let cidr = attr(attrs, "cidr_block")?;
                let (id, available) = create_untokened(
                    &address.to_string(),
                    || async {
                        let out = self
                            .ec2
                            .create_vpc()
                            .cidr_block(cidr)
                            .tag_specifications(spec_tags(ResourceType::Vpc, tags))
                            .customize()
                            .config_override(once!(aws_sdk_ec2))
                            .send()
                            .await
                            .map_err(|e| aws_err("CreateVpc", e))?;
                        let vpc = out.vpc();
                        let id = vpc.and_then(|v| v.vpc_id()).unwrap_or_default().to_string();
                        // The create's own answer says whether the VPC is usable yet: no
                        // describe when it already is.
                        let available =
                            vpc.and_then(|v| v.state()).map(|s| s.as_str()) == Some("available");
                        Ok((id, available))
                    },
                    || async { Ok(self.ec2_by_address(address).await?.map(|id| (id, false))) },
                )
                .await?;
                if !available {
                    self.wait_vpc_available(&id).await?;
                }
                self.set_vpc_dns(&id, attrs, true).await?;
                id
            }
            Kind::Subnet => {
                let (vpc, cidr, az) = (
                    attr(attrs, "vpc_id")?,
                    attr(attrs, "cidr_block")?,
                    attr(attrs, "availability_zone")?,
                );
                let id = create_untokened(
                    &address.to_string(),
                    || async {
                        let out = self
                            .ec2
                            .create_subnet()
                            .vpc_id(vpc)
                            .cidr_block(cidr)
                            .availability_zone(az)
                            .tag_specifications(spec_tags(ResourceType::Subnet, tags))
                            .customize()
                            .config_override(once!(aws_sdk_ec2))
                            .send()
                            .await
                            .map_err(|e| aws_err("CreateSubnet", e))?;
                        Ok(out
                            .subnet()
                            .and_then(|s| s.subnet_id())
                            .unwrap_or_default()
                            .to_string())
                    },
                    || self.ec2_by_address(address),
                )
                .await?;
                if attrs.get("map_public_ip_on_launch") == Some(&json!(true)) {
                    self.set_map_public_ip(&id, true).await?;
                }
                id
            }
            Kind::InternetGateway => {
                let id = create_untokened(
                    &address.to_string(),
                    || async {
                        let out = self
                            .ec2
                            .create_internet_gateway()
                            .tag_specifications(spec_tags(ResourceType::InternetGateway, tags))
                            .customize()
                            .config_override(once!(aws_sdk_ec2))
                            .send()
                            .await
                            .map_err(|e| aws_err("CreateInternetGateway", e))?;
                        Ok(out
                            .internet_gateway()
                            .and_then(|g| g.internet_gateway_id())
                            .unwrap_or_default()
                            .to_string())
                    },
                    || self.ec2_by_address(address),
                )
                .await?;
                let vpc = attr(attrs, "vpc_id")?;
                let attached = self
                    .ec2
                    .attach_internet_gateway()
                    .internet_gateway_id(&id)
                    .vpc_id(vpc)
                    .send()
                    .await
                    .map_err(|e| aws_err("AttachInternetGateway", e));
                match attached {
                    // An attach whose answer was lost, sent again: attached already, to this VPC.
                    Err(e)
                        if e.is(&["Resource.AlreadyAssociated"])
                            && self.igw_attached(&id, vpc).await? => {}
                    other => {
                        other?;
                    }
                }
                id
            }
            Kind::Eip => {
                create_untokened(
                    &address.to_string(),
                    || async {
                        let out = self
                            .ec2
                            .allocate_address()
                            .domain(DomainType::Vpc)
                            .tag_specifications(spec_tags(ResourceType::ElasticIp, tags))
                            .customize()
                            .config_override(once!(aws_sdk_ec2))
                            .send()
                            .await
                            .map_err(|e| aws_err("AllocateAddress", e))?;
                        Ok(out.allocation_id().unwrap_or_default().to_string())
                    },
                    || self.ec2_by_address(address),
                )
                .await?
            }
            Kind::NatGateway => self.create_nat(attrs, tags).await?,
            Kind::RouteTable => {
                let out = self
                    .ec2
                    .create_route_table()
                    .vpc_id(attr(attrs, "vpc_id")?)
                    .tag_specifications(spec_tags(ResourceType::RouteTable, tags))
                    // The SDK resends it on its retries: a lost answer makes no second table.
                    .client_token(request_token())
                    .send()
                    .await
                    .map_err(|e| aws_err("CreateRouteTable", e))?;
                let id = out
                    .route_table()
                    .and_then(|r| r.route_table_id())
                    .unwrap_or_default()
                    .to_string();
                // Routes and associations need only the table: all at once.
                let routes = attrs
                    .get("routes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|r| self.put_route(&id, r, false));
                let subnets = attr_strings(attrs.get("subnet_ids"));
                let associations = subnets.iter().map(|s| self.associate(&id, s));
                let (routes, associations) = tokio::join!(
                    futures::future::try_join_all(routes),
                    futures::future::try_join_all(associations),
                );
                routes?;
                associations?;
                id
            }
            Kind::SecurityGroup => {
                let (vpc, name, description) = (
                    attr(attrs, "vpc_id")?,
                    attr(attrs, "group_name")?,
                    attr(attrs, "description")?,
                );
                let id = create_untokened(
                    &address.to_string(),
                    || async {
                        let out = self
                            .ec2
                            .create_security_group()
                            .vpc_id(vpc)
                            .group_name(name)
                            .description(description)
                            .tag_specifications(spec_tags(ResourceType::SecurityGroup, tags))
                            .customize()
                            .config_override(once!(aws_sdk_ec2))
                            .send()
                            .await
                            .map_err(|e| aws_err("CreateSecurityGroup", e))?;
                        Ok(out.group_id().unwrap_or_default().to_string())
                    },
                    || self.ec2_by_address(address),
                )
                .await?;
                // AWS gives a new group an allow-all egress rule: compare with it, not with nothing.
                let default_egress = json!([{"protocol": "-1", "from_port": null, "to_port": null, "cidr": "0.0.0.0/0"}]);
                let fresh = Observed {
                    address: address.clone(),
                    id: id.clone(),
                    outputs: Outputs::new(),
                    attrs: Attrs::from([
                        ("ingress".into(), json!([])),
                        ("egress".into(), default_egress),
                    ]),
                    uses: vec![],
                    sensitive: None,
                    deleting: false,
                };
                self.sync_rules(&id, attrs, &fresh).await?;
                id
            }
            _ => unreachable!("not an EC2 kind"),
        };
        Ok(Outputs::from([("id".into(), id)]))
    }

    /// A NAT gateway that ends `failed` is never usable: it is deleted and created again (its
    /// Elastic IP is freed by the failure), up to three times, before the step fails.
    async fn create_nat(
        &self,
        attrs: &Attrs,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, ProviderError> {
        let mut last_failure = String::new();
        for attempt in 1..=3 {
            let out = self
                .ec2
                .create_nat_gateway()
                .subnet_id(attr(attrs, "subnet_id")?)
                .allocation_id(attr(attrs, "allocation_id")?)
                .client_token(request_token())
                .tag_specifications(spec_tags(ResourceType::Natgateway, tags))
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
                self.settings.deadline,
                &format!("NAT gateway {id} available"),
                || async {
                    let r = self
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
                return Ok(id);
            };
            super::note(&format!(
                "NAT gateway {id} failed ({why}); deleting it and creating another (attempt {attempt} of 3)"
            ));
            self.ec2
                .delete_nat_gateway()
                .nat_gateway_id(&id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_err("DeleteNatGateway", e))
                .or_else(super::already(&[
                    "NatGatewayNotFound",
                    "InvalidNatGatewayID.NotFound",
                ]))?;
            last_failure = format!("NAT gateway {id} failed: {why}");
        }
        Err(ProviderError(format!("{last_failure} (3 attempts)")))
    }

    async fn set_map_public_ip(&self, id: &str, on: bool) -> Result<(), ProviderError> {
        self.ec2
            .modify_subnet_attribute()
            .subnet_id(id)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(on).build())
            .send()
            .await
            .map_err(|e| aws_err("ModifySubnetAttribute", e))?;
        Ok(())
    }

    async fn put_route(
        &self,
        table: &str,
        route: &Value,
        replace: bool,
    ) -> Result<(), ProviderError> {
        let dest = route["destination"].as_str().unwrap_or("0.0.0.0/0");
        let target = route["target"].as_str().unwrap_or_default();
        let nat = target.starts_with("nat-");
        if replace {
            let mut r = self
                .ec2
                .replace_route()
                .route_table_id(table)
                .destination_cidr_block(dest);
            r = if nat {
                r.nat_gateway_id(target)
            } else {
                r.gateway_id(target)
            };
            r.send().await.map_err(|e| aws_err("ReplaceRoute", e))?;
        } else {
            let mut r = self
                .ec2
                .create_route()
                .route_table_id(table)
                .destination_cidr_block(dest);
            r = if nat {
                r.nat_gateway_id(target)
            } else {
                r.gateway_id(target)
            };
            match r.send().await.map_err(|e| aws_err("CreateRoute", e)) {
                // Sent again after its answer was lost: the route is there; make sure it is
                // this one.
                Err(e) if e.is(&["RouteAlreadyExists"]) => {
                    return Box::pin(self.put_route(table, route, true)).await;
                }
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }

    /// Whether internet gateway `id` is attached to `vpc`.
    async fn igw_attached(&self, id: &str, vpc: &str) -> Result<bool, ProviderError> {
        let out = self
            .ec2
            .describe_internet_gateways()
            .internet_gateway_ids(id)
            .send()
            .await
            .map_err(|e| aws_err("DescribeInternetGateways", e))?;
        Ok(out
            .internet_gateways()
            .iter()
            .flat_map(|g| g.attachments())
            .any(|a| a.vpc_id() == Some(vpc)))
    }

    /// The id of the EC2 resource this stack tagged with `address`, if it exists: what a
    /// create whose answer was lost may have made. Read as discovery reads the stack (tag
    /// filters, the address checked here): only after a failed create, so rare.
    async fn ec2_by_address(&self, address: &Address) -> Result<Option<String>, ProviderError> {
        let found = self.discover_ec2().await?;
        Ok(found
            .resources
            .into_iter()
            .find(|o| &o.address == address)
            .map(|o| o.id))
    }

    async fn associate(&self, table: &str, subnet: &str) -> Result<(), ProviderError> {
        let r = self
            .ec2
            .associate_route_table()
            .route_table_id(table)
            .subnet_id(subnet)
            .send()
            .await
            .map_err(|e| aws_err("AssociateRouteTable", e));
        match r {
            // Sent again after its answer was lost: associated already, with this table.
            Err(e)
                if e.is(&["Resource.AlreadyAssociated"])
                    && self.associated(table, subnet).await? => {}
            other => {
                other?;
            }
        }
        Ok(())
    }

    async fn associated(&self, table: &str, subnet: &str) -> Result<bool, ProviderError> {
        let out = self
            .ec2
            .describe_route_tables()
            .route_table_ids(table)
            .send()
            .await
            .map_err(|e| aws_err("DescribeRouteTables", e))?;
        Ok(out
            .route_tables()
            .iter()
            .flat_map(|t| t.associations())
            .any(|a| a.subnet_id() == Some(subnet)))
    }

    async fn sync_rules(&self, id: &str, attrs: &Attrs, o: &Observed) -> Result<(), ProviderError> {
        for egress in [false, true] {
            let key = if egress { "egress" } else { "ingress" };
            let want: Vec<Value> = attrs
                .get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let have: Vec<Value> = o
                .attrs
                .get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let add: Vec<IpPermission> = want
                .iter()
                .filter(|r| !have.contains(r))
                .map(permission)
                .collect();
            let remove: Vec<IpPermission> = have
                .iter()
                .filter(|r| !want.contains(r))
                .map(permission)
                .collect();
            if !remove.is_empty() {
                if egress {
                    self.ec2
                        .revoke_security_group_egress()
                        .group_id(id)
                        .set_ip_permissions(Some(remove))
                        .send()
                        .await
                        .map_err(|e| aws_err("RevokeSecurityGroupEgress", e))?;
                } else {
                    self.ec2
                        .revoke_security_group_ingress()
                        .group_id(id)
                        .set_ip_permissions(Some(remove))
                        .send()
                        .await
                        .map_err(|e| aws_err("RevokeSecurityGroupIngress", e))?;
                }
            }
            if !add.is_empty() {
                if egress {
                    self.ec2
                        .authorize_security_group_egress()
                        .group_id(id)
                        .set_ip_permissions(Some(add))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| aws_err("AuthorizeSecurityGroupEgress", e))
                        // Sent again after its answer was lost: the rules are there.
                        .or_else(|e| {
                            if e.is(&["InvalidPermission.Duplicate"]) {
                                Ok(())
                            } else {
                                Err(e)
                            }
                        })?;
                } else {
                    self.ec2
                        .authorize_security_group_ingress()
                        .group_id(id)
                        .set_ip_permissions(Some(add))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| aws_err("AuthorizeSecurityGroupIngress", e))
                        // Sent again after its answer was lost: the rules are there.
                        .or_else(|e| {
                            if e.is(&["InvalidPermission.Duplicate"]) {
                                Ok(())
                            } else {
                                Err(e)
                            }
                        })?;
                }
            }
        }
        Ok(())
    }

    async fn sync_ec2_tags(&self, attrs: &Attrs, o: &Observed) -> Result<(), ProviderError> {
        let (set, remove) = tag_delta(attrs, o);
        if !set.is_empty() {
            self.ec2
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
            self.ec2
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

    pub(super) async fn update_ec2(
        &self,
        attrs: &Attrs,
        o: &Observed,
    ) -> Result<(), ProviderError> {
        match o.address.kind {
            Kind::Vpc
                if changed(attrs, o, "enable_dns_support")
                    || changed(attrs, o, "enable_dns_hostnames") =>
            {
                self.set_vpc_dns(&o.id, attrs, false).await?
            }
            Kind::Subnet if changed(attrs, o, "map_public_ip_on_launch") => {
                self.set_map_public_ip(
                    &o.id,
                    attrs.get("map_public_ip_on_launch") == Some(&json!(true)),
                )
                .await?
            }
            Kind::RouteTable => {
                let want = attrs
                    .get("routes")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let have = o
                    .attrs
                    .get("routes")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for r in want.iter().filter(|r| !have.contains(r)) {
                    let exists = have.iter().any(|h| h["destination"] == r["destination"]);
                    self.put_route(&o.id, r, exists).await?;
                }
                for h in have
                    .iter()
                    .filter(|h| !want.iter().any(|r| r["destination"] == h["destination"]))
                {
                    self.ec2
                        .delete_route()
                        .route_table_id(&o.id)
                        .destination_cidr_block(h["destination"].as_str().unwrap_or_default())
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| aws_err("DeleteRoute", e))
                        .or_else(super::already(&["InvalidRoute.NotFound"]))?;
                }
                let want = attr_strings(attrs.get("subnet_ids"));
                let have = attr_strings(o.attrs.get("subnet_ids"));
                for s in have.iter().filter(|s| !want.contains(s)) {
                    if let Some(assoc) = o.outputs.get(&format!("association:{s}")) {
                        self.ec2
                            .disassociate_route_table()
                            .association_id(assoc)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| aws_err("DisassociateRouteTable", e))
                            .or_else(super::already(&["InvalidAssociationID.NotFound"]))?;
                    }
                }
                for s in want.iter().filter(|s| !have.contains(s)) {
                    self.associate(&o.id, s).await?;
                }
            }
            Kind::SecurityGroup => self.sync_rules(&o.id, attrs, o).await?,
            _ => {}
        }
        self.sync_ec2_tags(attrs, o).await
    }

    pub(super) async fn delete_ec2(&self, o: &Observed) -> Result<(), ProviderError> {
        let deadline = self.settings.deadline;
        let id = o.id.as_str();
        let what = format!("delete {} ({id})", o.address);
        match o.address.kind {
            Kind::Vpc => {
                retry_codes(deadline, IN_USE, &what, || async {
                    self.ec2
                        .delete_vpc()
                        .vpc_id(id)
                        .send()
                        .await
                        .map(|_| ())
                        .map(|_| ())
                        .map_err(|e| aws_err("DeleteVpc", e))
                        .or_else(super::already(&["InvalidVpcID.NotFound"]))
                })
                .await
            }
            Kind::Subnet => {
                retry_codes(deadline, IN_USE, &what, || async {
                    self.ec2
                        .delete_subnet()
                        .subnet_id(id)
                        .send()
                        .await
                        .map(|_| ())
                        .map(|_| ())
                        .map_err(|e| aws_err("DeleteSubnet", e))
                        .or_else(super::already(&["InvalidSubnetID.NotFound"]))
                })
                .await
            }
            Kind::InternetGateway => {
                if let Some(vpc) = o.attrs.get("vpc_id").and_then(Value::as_str) {
                    // Detach fails while a NAT's public address is still mapped in the VPC.
                    retry_codes(deadline, IN_USE, &what, || async {
                        self.ec2
                            .detach_internet_gateway()
                            .internet_gateway_id(id)
                            .vpc_id(vpc)
                            .send()
                            .await
                            .map(|_| ())
                            .map(|_| ())
                            .map_err(|e| aws_err("DetachInternetGateway", e))
                            .or_else(super::already(&["Gateway.NotAttached"]))
                    })
                    .await?;
                }
                retry_codes(deadline, IN_USE, &what, || async {
                    self.ec2
                        .delete_internet_gateway()
                        .internet_gateway_id(id)
                        .send()
                        .await
                        .map(|_| ())
                        .map(|_| ())
                        .map_err(|e| aws_err("DeleteInternetGateway", e))
                        .or_else(super::already(&["InvalidInternetGatewayID.NotFound"]))
                })
                .await
            }
            Kind::Eip => {
                retry_codes(deadline, IN_USE, &what, || async {
                    self.ec2
                        .release_address()
                        .allocation_id(id)
                        .send()
                        .await
                        .map(|_| ())
                        .map(|_| ())
                        .map_err(|e| aws_err("ReleaseAddress", e))
                        .or_else(super::already(&["InvalidAllocationID.NotFound"]))
                })
                .await
            }
            Kind::NatGateway => {
                self.ec2
                    .delete_nat_gateway()
                    .nat_gateway_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_err("DeleteNatGateway", e))
                    .or_else(super::already(&[
                        "NatGatewayNotFound",
                        "InvalidNatGatewayID.NotFound",
                    ]))?;
                wait_until(deadline, &format!("NAT gateway {id} deleted"), || async {
                    let r = self
                        .ec2
                        .describe_nat_gateways()
                        .nat_gateway_ids(id)
                        .send()
                        .await;
                    let r = match r {
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
            Kind::RouteTable => {
                let disassociations = o
                    .outputs
                    .iter()
                    .filter(|(k, _)| k.starts_with("association:"))
                    .map(|(_, assoc)| async move {
                        let r = self
                            .ec2
                            .disassociate_route_table()
                            .association_id(assoc)
                            .send()
                            .await;
                        match r
                            .map(|_| ())
                            .map_err(|e| aws_err("DisassociateRouteTable", e))
                            .or_else(super::already(&["InvalidAssociationID.NotFound"]))
                        {
                            Err(e) if !e.is(&["InvalidAssociationID.NotFound"]) => Err(e),
                            _ => Ok(()),
                        }
                    });
                futures::future::try_join_all(disassociations).await?;
                retry_codes(deadline, IN_USE, &what, || async {
                    self.ec2
                        .delete_route_table()
                        .route_table_id(id)
                        .send()
                        .await
                        .map(|_| ())
                        .map(|_| ())
                        .map_err(|e| aws_err("DeleteRouteTable", e))
                        .or_else(super::already(&["InvalidRouteTableID.NotFound"]))
                })
                .await
            }
            Kind::SecurityGroup => {
                retry_codes(deadline, IN_USE, &what, || async {
                    self.ec2
                        .delete_security_group()
                        .group_id(id)
                        .send()
                        .await
                        .map(|_| ())
                        .map(|_| ())
                        .map_err(|e| aws_err("DeleteSecurityGroup", e))
                        .or_else(super::already(&["InvalidGroup.NotFound"]))
                })
                .await
            }
            _ => unreachable!("not an EC2 kind"),
        }
    }
}
