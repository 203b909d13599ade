//! The workers' security group and its rules. CreateSecurityGroup has no idempotency token:
//! one attempt at a time, looked up by its tags after a failure AWS may have acted on.

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType};
use serde_json::{Value, json};

use super::super::ec2::{Scope, at_address, delete_ec2, spec_tags, sync_ec2_tags, tag_map};
use super::super::{
    Aws, AwsError, Found, already, attr, aws_err, create_untokened, observed, tags_value,
};
use super::{Create, Resource, Update};
use crate::apply::ProviderError;
use crate::kinds::TAGS;
use crate::kinds::security_group::{DESCRIPTION, EGRESS, GROUP_NAME, INGRESS, VPC_ID};
use crate::model::{Attrs, Observed, Outputs};
use crate::spec::Spec;

pub(super) struct SecurityGroup;

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
            p = p.ipv6_ranges(aws_sdk_ec2::types::Ipv6Range::builder().cidr_ipv6(c).build());
        } else {
            p = p.ip_ranges(IpRange::builder().cidr_ip(c).build());
        }
    }
    if let Some(g) = rule["source_group"].as_str() {
        p = p.user_id_group_pairs(aws_sdk_ec2::types::UserIdGroupPair::builder().group_id(g).build());
    }
    p.build()
}

async fn find(aws: &Aws) -> Result<Found, ProviderError> {
    let sgs = aws
        .ec2
        .describe_security_groups()
        .filters(aws.discovery_filter(Scope::Vpc))
        .send()
        .await
        .map_err(|e| aws_err("DescribeSecurityGroups", e))?;
    let mut found = Found::default();
    for g in sgs.security_groups() {
        let (Some(a), Some(id)) = (g.group_id().and_then(|id| aws.ec2_address(g.tags(), id)), g.group_id()) else {
            continue;
        };
        let attrs = Attrs::from([
            (VPC_ID.into(), json!(g.vpc_id())),
            (GROUP_NAME.into(), json!(g.group_name())),
            (DESCRIPTION.into(), json!(g.description())),
            (INGRESS.into(), rule_values(g.ip_permissions())),
            (EGRESS.into(), rule_values(g.ip_permissions_egress())),
            (TAGS.into(), tags_value(&tag_map(g.tags()))),
        ]);
        let uses = g.vpc_id().map(String::from).into_iter().collect();
        found.resources.push(observed(a, id, &[], attrs, uses));
    }
    Ok(found)
}

/// Rules added and revoked to go from `have` to the rules in `attrs`.
async fn sync_rules(aws: &Aws, id: &str, attrs: &Attrs, have: &Attrs) -> Result<(), ProviderError> {
    // Sent again after its answer was lost: the rules are there.
    let duplicate = already(&["InvalidPermission.Duplicate"]);
    for egress in [false, true] {
        let key = if egress { EGRESS } else { INGRESS };
        let rules = |a: &Attrs| a.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
        let (want, have) = (rules(attrs), rules(have));
        let add: Vec<IpPermission> = want.iter().filter(|r| !have.contains(r)).map(permission).collect();
        let remove: Vec<IpPermission> = have.iter().filter(|r| !want.contains(r)).map(permission).collect();
        if !remove.is_empty() {
            let r: Result<(), AwsError> = if egress {
                aws.ec2
                    .revoke_security_group_egress()
                    .group_id(id)
                    .set_ip_permissions(Some(remove))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_err("RevokeSecurityGroupEgress", e))
            } else {
                aws.ec2
                    .revoke_security_group_ingress()
                    .group_id(id)
                    .set_ip_permissions(Some(remove))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_err("RevokeSecurityGroupIngress", e))
            };
            r?;
        }
        if !add.is_empty() {
            let r: Result<(), AwsError> = if egress {
                aws.ec2
                    .authorize_security_group_egress()
                    .group_id(id)
                    .set_ip_permissions(Some(add))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_err("AuthorizeSecurityGroupEgress", e))
            } else {
                aws.ec2
                    .authorize_security_group_ingress()
                    .group_id(id)
                    .set_ip_permissions(Some(add))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_err("AuthorizeSecurityGroupIngress", e))
            };
            r.or_else(&duplicate)?;
        }
    }
    Ok(())
}

impl Resource for SecurityGroup {
    async fn discover(&self, aws: &Aws, _: &Spec) -> Result<Found, ProviderError> {
        find(aws).await
    }

    async fn create(&self, aws: &Aws, c: &Create<'_>) -> Result<Outputs, ProviderError> {
        let (vpc, name, description) = (
            attr(c.attrs, VPC_ID)?,
            attr(c.attrs, GROUP_NAME)?,
            attr(c.attrs, DESCRIPTION)?,
        );
        let id = create_untokened(
            &c.address.to_string(),
            || async {
                let out = aws
                    .ec2
                    .create_security_group()
                    .vpc_id(vpc)
                    .group_name(name)
                    .description(description)
                    .tag_specifications(spec_tags(ResourceType::SecurityGroup, c.tags))
                    .customize()
                    .config_override(once!(aws_sdk_ec2))
                    .send()
                    .await
                    .map_err(|e| aws_err("CreateSecurityGroup", e))?;
                Ok(out.group_id().unwrap_or_default().to_string())
            },
            || async { Ok(at_address(find(aws).await?, c.address)) },
        )
        .await?;
        // AWS gives a new group an allow-all egress rule: compare with it, not with nothing.
        let fresh = Attrs::from([
            (INGRESS.into(), json!([])),
            (
                EGRESS.into(),
                json!([{"protocol": "-1", "from_port": null, "to_port": null, "cidr": "0.0.0.0/0"}]),
            ),
        ]);
        sync_rules(aws, &id, c.attrs, &fresh).await?;
        Ok(Outputs::from([("id".into(), id)]))
    }

    async fn update(&self, aws: &Aws, u: &Update<'_>) -> Result<(), ProviderError> {
        let o = u.observed;
        sync_rules(aws, &o.id, u.attrs, &o.attrs).await?;
        sync_ec2_tags(aws, u.attrs, o).await
    }

    async fn delete(&self, aws: &Aws, o: &Observed) -> Result<(), ProviderError> {
        delete_ec2(aws, o, || async {
            aws.ec2
                .delete_security_group()
                .group_id(&o.id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_err("DeleteSecurityGroup", e))
                .or_else(already(&["InvalidGroup.NotFound"]))
        })
        .await
    }
}
