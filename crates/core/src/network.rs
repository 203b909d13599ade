//! An existing VPC (`[network] vpc_id`, issue 13), read only: what `plan` and `verify` check
//! of it before workers are put in it. Pure: the provider reads the facts, this says what
//! breaks workers in practice, each subnet that fails named.

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::{ExistingNetwork, Spec, Tier};
use crate::verify::Check;

/// What AWS says of the VPC, its subnets and its route tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkFacts {
    /// `None`: no such VPC.
    pub vpc: Option<VpcFacts>,
    /// The listed subnets that exist (in any VPC).
    pub subnets: Vec<SubnetFacts>,
    /// The VPC's route tables.
    pub route_tables: Vec<RouteTableFacts>,
    /// The VPC's NAT gateways by id: their state (`available`, `pending`, `failed`, …).
    pub nat_gateways: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcFacts {
    pub id: String,
    pub dns_support: bool,
    pub dns_hostnames: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetFacts {
    pub id: String,
    pub vpc_id: String,
    pub az: String,
    pub available_ips: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTableFacts {
    pub id: String,
    /// The VPC's main table: the one of every subnet associated with none.
    pub main: bool,
    pub subnet_ids: Vec<String>,
    /// Where `0.0.0.0/0` goes (`nat-…`, `igw-…`, …); `None` without such a route, or when
    /// it is a blackhole.
    pub default_target: Option<String>,
}

/// The existing resources a plan reads, as its document lists them.
pub fn listed(e: &ExistingNetwork) -> Vec<String> {
    std::iter::once(format!("vpc {}", e.vpc_id))
        .chain(e.subnet_ids.iter().map(|s| format!("subnet {s}")))
        .collect()
}

/// Each check, passed or failed with what to do.
pub fn check(spec: &Spec, e: &ExistingNetwork, facts: &NetworkFacts) -> Vec<Check> {
    let mut out = Vec::new();
    let Some(vpc) = &facts.vpc else {
        out.push((
            format!("VPC {}", e.vpc_id),
            Err("not found in the stack's region: check [network] vpc_id and the region".into()),
        ));
        return out;
    };
    let dns_off: Vec<&str> = [
        ("enableDnsSupport", vpc.dns_support),
        ("enableDnsHostnames", vpc.dns_hostnames),
    ]
    .iter()
    .filter(|(_, on)| !on)
    .map(|(name, _)| *name)
    .collect();
    out.push((
        format!("VPC {}", vpc.id),
        match dns_off.as_slice() {
            [] => Ok("found; DNS support and hostnames on".into()),
            off => Err(format!(
                "{} off: the stack's Cloud Map namespace (private DNS) and the tasks' name \
                 resolution need both on (aws ec2 modify-vpc-attribute --vpc-id {} \
                 --enable-dns-support / --enable-dns-hostnames)",
                off.join(" and "),
                vpc.id
            )),
        },
    ));

    let found: BTreeMap<&str, &SubnetFacts> =
        facts.subnets.iter().map(|s| (s.id.as_str(), s)).collect();
    let missing: Vec<&str> = e
        .subnet_ids
        .iter()
        .map(String::as_str)
        .filter(|id| !found.contains_key(id))
        .collect();
    let foreign: Vec<String> = e
        .subnet_ids
        .iter()
        .filter_map(|id| found.get(id.as_str()))
        .filter(|s| s.vpc_id != vpc.id)
        .map(|s| format!("{} (in {})", s.id, s.vpc_id))
        .collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("{} not found", missing.join(", ")));
    }
    if !foreign.is_empty() {
        problems.push(format!("{} not in {}", foreign.join(", "), vpc.id));
    }
    out.push((
        "subnets".into(),
        match problems.is_empty() {
            true => Ok(format!("{} in {}", e.subnet_ids.len(), vpc.id)),
            false => Err(problems.join("; ")),
        },
    ));
    let ours: Vec<&SubnetFacts> = e
        .subnet_ids
        .iter()
        .filter_map(|id| found.get(id.as_str()).copied())
        .filter(|s| s.vpc_id == vpc.id)
        .collect();
    if ours.is_empty() {
        return out;
    }

    let zones: BTreeSet<&str> = ours.iter().map(|s| s.az.as_str()).collect();
    out.push((
        "availability zones".into(),
        match zones.len() {
            1 => Err(format!(
                "every subnet is in {}: a zone outage would stop every worker; list subnets \
                 in at least two zones",
                zones.iter().next().expect("one zone")
            )),
            n => Ok(format!(
                "{n} ({})",
                zones.iter().copied().collect::<Vec<_>>().join(", ")
            )),
        },
    ));

    let tier = spec.network.task_subnets;
    let main = facts.route_tables.iter().find(|t| t.main);
    let mut unrouted = Vec::new();
    let mut beyond = Vec::new();
    for s in &ours {
        let (table, how) = match facts
            .route_tables
            .iter()
            .find(|t| t.subnet_ids.contains(&s.id))
        {
            Some(t) => (Some(t), ""),
            None => (
                main,
                " (the VPC's main table: the subnet has no table of its own)",
            ),
        };
        let Some(table) = table else {
            unrouted.push(format!("{} has no route table", s.id));
            continue;
        };
        let target = table.default_target.as_deref();
        let fault = match (tier, target) {
            (Tier::Private, Some(t)) if t.starts_with("nat-") => {
                match facts.nat_gateways.get(t).map(String::as_str) {
                    Some("available") => None,
                    Some(state) => Some(format!("to NAT gateway {t}, which is {state}")),
                    None => Some(format!("to NAT gateway {t}, which does not exist")),
                }
            }
            (Tier::Private, Some(t)) if t.starts_with("igw-") => Some(format!(
                "to internet gateway {t}, which a task without a public IP cannot use (give \
                 them as public_subnet_ids, or route them through a NAT gateway)"
            )),
            (Tier::Public, Some(t)) if t.starts_with("igw-") => None,
            // Centralized egress (a Transit Gateway, a firewall or GWLB endpoint, a NAT
            // instance, a VPN gateway): prefect-ecs cannot see past it; verify says so.
            (Tier::Private, Some(t))
                if ["tgw-", "vpce-", "eni-", "i-", "vgw-"]
                    .iter()
                    .any(|p| t.starts_with(p)) =>
            {
                beyond.push(format!("{} → {t}", s.id));
                None
            }
            (Tier::Public, Some(t)) if t.starts_with("nat-") => Some(format!(
                "to NAT gateway {t}, where a task's public IP is of no use (give them as \
                 private_subnet_ids, or route them to an internet gateway)"
            )),
            (_, Some(t)) => Some(format!("to {t}, neither a NAT nor an internet gateway")),
            (_, None) => Some("nowhere".into()),
        };
        if let Some(fault) = fault {
            unrouted.push(format!(
                "{}: its route table {}{how} sends 0.0.0.0/0 {fault}",
                s.id, table.id
            ));
        }
    }
    let needs = match tier {
        Tier::Private => "a route to an available NAT gateway",
        Tier::Public => "a route to an internet gateway",
    };
    out.push((
        "route to the internet".into(),
        match unrouted.is_empty() {
            true if !beyond.is_empty() => Ok(format!(
                "0.0.0.0/0 leaves through {} (centralized egress: prefect-ecs cannot see past \
                 it; make sure it reaches the internet or Prefect, ECR and Secrets Manager)",
                beyond.join(", ")
            )),
            true => Ok(format!("every subnet has {needs}")),
            false => Err(format!(
                "the workers reach Prefect, ECR and Secrets Manager through it, and every \
                 {} subnet needs {needs}; {}",
                tier.as_str(),
                unrouted.join("; ")
            )),
        },
    ));

    // A rolling deployment starts the new tasks before the old ones stop: 200 %.
    let needed: u32 = spec.workers.iter().map(|w| w.desired_count * 2).sum();
    let free: u32 = ours.iter().map(|s| s.available_ips).sum();
    out.push((
        "free IP addresses".into(),
        match free >= needed {
            true => Ok(format!(
                "{free} free; the workers need {needed} during a deployment (200 %), and each \
                 running flow run one more"
            )),
            false => Err(format!(
                "{free} free in the subnets, and the workers need {needed} during a deployment \
                 (200 %), before any flow run: add subnets or free addresses"
            )),
        },
    ));
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const VPC: &str = "vpc-0a1b2c3d4e5f60718";
    const A: &str = "subnet-0a1b2c3d4e5f60001";
    const B: &str = "subnet-0a1b2c3d4e5f60002";

    fn spec(ids: &str) -> Spec {
        let source = format!(
            "[stack]\nname = \"shared\"\nregion = \"us-east-1\"\n[prefect]\n\
             api_url = \"http://prefect.internal:4200/api\"\n[network]\nvpc_id = \"{VPC}\"\n\
             {ids}\n[[worker]]\nname = \"w\"\ndesired_count = 2\n"
        );
        crate::spec::parse(&source, Path::new("t.toml"), &|_| None, None)
            .unwrap_or_else(|e| panic!("{}", crate::spec::render_plain(&e)))
    }

    fn private() -> Spec {
        spec(&format!("private_subnet_ids = [\"{A}\", \"{B}\"]"))
    }

    fn subnet(id: &str, az: &str, free: u32) -> SubnetFacts {
        SubnetFacts {
            id: id.into(),
            vpc_id: VPC.into(),
            az: az.into(),
            available_ips: free,
        }
    }

    fn table(id: &str, main: bool, subnets: &[&str], target: Option<&str>) -> RouteTableFacts {
        RouteTableFacts {
            id: id.into(),
            main,
            subnet_ids: subnets.iter().map(|s| s.to_string()).collect(),
            default_target: target.map(str::to_owned),
        }
    }

    /// A VPC where both subnets reach an available NAT, in two zones, with room.
    fn good() -> NetworkFacts {
        NetworkFacts {
            vpc: Some(VpcFacts {
                id: VPC.into(),
                dns_support: true,
                dns_hostnames: true,
            }),
            subnets: vec![subnet(A, "us-east-1a", 200), subnet(B, "us-east-1b", 200)],
            route_tables: vec![
                table("rtb-main", true, &[], None),
                table("rtb-private", false, &[A, B], Some("nat-0001")),
            ],
            nat_gateways: BTreeMap::from([("nat-0001".into(), "available".into())]),
        }
    }

    fn failures(spec: &Spec, facts: &NetworkFacts) -> Vec<String> {
        let e = spec.network.existing.as_ref().unwrap();
        check(spec, e, facts)
            .into_iter()
            .filter_map(|(what, r)| r.err().map(|e| format!("{what}: {e}")))
            .collect()
    }

    #[test]
    fn a_usable_network_passes_every_check() {
        let s = private();
        let e = s.network.existing.as_ref().unwrap();
        let checks = check(&s, e, &good());
        let names: Vec<&str> = checks.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(
            names,
            [
                "VPC vpc-0a1b2c3d4e5f60718",
                "subnets",
                "availability zones",
                "route to the internet",
                "free IP addresses"
            ]
        );
        assert!(checks.iter().all(|(_, r)| r.is_ok()), "{checks:?}");
    }

    /// The main table serves a subnet associated with none: its missing route is named, with
    /// the table it comes from.
    #[test]
    fn a_subnet_on_the_main_table_without_a_default_route_is_named() {
        let mut facts = good();
        facts.route_tables[1].subnet_ids = vec![A.into()];
        assert_eq!(
            failures(&private(), &facts),
            [format!(
                "route to the internet: the workers reach Prefect, ECR and Secrets Manager \
                 through it, and every private subnet needs a route to an available NAT \
                 gateway; {B}: its route table rtb-main (the VPC's main table: the subnet has \
                 no table of its own) sends 0.0.0.0/0 nowhere"
            )]
        );
        // A NAT that is not available, an IGW for private subnets: each said.
        facts.route_tables[0].default_target = Some("igw-1".into());
        facts
            .nat_gateways
            .insert("nat-0001".into(), "failed".into());
        let f = failures(&private(), &facts).join("\n");
        assert!(f.contains(&format!("{A}: its route table rtb-private sends 0.0.0.0/0 to NAT gateway nat-0001, which is failed")), "{f}");
        assert!(
            f.contains("to internet gateway igw-1, which a task without a public IP cannot use"),
            "{f}"
        );
    }

    /// Centralized egress (a Transit Gateway, a firewall endpoint, a NAT instance) is not
    /// refused: prefect-ecs cannot see past it, and says so.
    #[test]
    fn centralized_egress_passes_with_what_cannot_be_seen_said() {
        let mut facts = good();
        facts.route_tables[1].default_target = Some("tgw-0123".into());
        let s = private();
        assert!(failures(&s, &facts).is_empty());
        let e = s.network.existing.as_ref().unwrap();
        let route = check(&s, e, &facts)
            .into_iter()
            .find(|(w, _)| w == "route to the internet")
            .unwrap();
        let text = route.1.unwrap();
        assert!(
            text.contains(&format!(
                "0.0.0.0/0 leaves through {A} → tgw-0123, {B} → tgw-0123 (centralized egress"
            )),
            "{text}"
        );
    }

    #[test]
    fn public_subnets_need_an_internet_gateway() {
        let s = spec(&format!("public_subnet_ids = [\"{A}\", \"{B}\"]"));
        assert_eq!(s.network.task_subnets, Tier::Public);
        let mut facts = good();
        facts.route_tables[1].default_target = Some("igw-0001".into());
        assert!(failures(&s, &facts).is_empty());
        facts.route_tables[1].default_target = Some("nat-0001".into());
        let f = failures(&s, &facts).join("\n");
        assert!(f.contains(&format!("{A}: its route table rtb-private sends 0.0.0.0/0 to NAT gateway nat-0001, where a task's public IP is of no use")), "{f}");
    }

    #[test]
    fn subnets_elsewhere_one_zone_no_room_and_dns_off_each_fail() {
        let mut facts = good();
        facts.vpc.as_mut().unwrap().dns_hostnames = false;
        facts.subnets = vec![SubnetFacts {
            vpc_id: "vpc-0ffffffffffffffff".into(),
            ..subnet(B, "us-east-1a", 3)
        }];
        let f = failures(&private(), &facts);
        assert_eq!(
            f,
            [
                format!(
                    "VPC {VPC}: enableDnsHostnames off: the stack's Cloud Map namespace \
                     (private DNS) and the tasks' name resolution need both on (aws ec2 \
                     modify-vpc-attribute --vpc-id {VPC} --enable-dns-support / \
                     --enable-dns-hostnames)"
                ),
                format!("subnets: {A} not found; {B} (in vpc-0ffffffffffffffff) not in {VPC}"),
            ]
        );
        let mut facts = good();
        facts.subnets = vec![subnet(A, "us-east-1a", 1), subnet(B, "us-east-1a", 2)];
        let f = failures(&private(), &facts);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f[0].starts_with("availability zones: every subnet is in us-east-1a"),
            "{f:?}"
        );
        assert!(
            f[1].starts_with("free IP addresses: 3 free in the subnets, and the workers need 4"),
            "{f:?}"
        );
        let none = NetworkFacts::default();
        assert_eq!(
            failures(&private(), &none),
            [format!(
                "VPC {VPC}: not found in the stack's region: check [network] vpc_id and the region"
            )]
        );
    }

    #[test]
    fn subnets_may_be_chosen_by_tags_instead_of_ids() {
        let s = spec("public_subnet_tags = { tier = \"edge\", team = \"data\" }");
        let e = s.network.existing.as_ref().unwrap();
        assert_eq!(s.network.task_subnets, Tier::Public);
        assert!(e.subnet_ids.is_empty());
        assert_eq!(e.subnet_tags.len(), 2);
        let source = format!(
            "[stack]\nname = \"s\"\n[prefect]\napi_url = \"http://p.internal:4200/api\"\n\
             [network]\nvpc_id = \"{VPC}\"\nprivate_subnet_ids = [\"{A}\"]\n\
             private_subnet_tags = {{ tier = \"x\" }}\n[[worker]]\nname = \"w\"\n"
        );
        let err = crate::spec::parse(&source, Path::new("t.toml"), &|_| None, Some("us-east-1"))
            .unwrap_err();
        let text = crate::spec::render_plain(&err);
        assert!(
            text.contains("give the subnets the tasks run in once: private_subnet_ids or private_subnet_tags, not both"),
            "{text}"
        );
    }

    /// The graph of an existing VPC holds none of the network's kinds and uses the ids as
    /// given; the plan lists them as read only.
    #[test]
    fn the_graph_puts_the_workers_in_the_existing_subnets() {
        use crate::model::Kind;
        let s = private();
        let g = crate::graph::build(&s, "us-east-1", None, None).unwrap();
        let kinds: BTreeSet<Kind> = g.resources().map(|d| d.address.kind).collect();
        for k in [
            Kind::Vpc,
            Kind::Subnet,
            Kind::InternetGateway,
            Kind::NatGateway,
            Kind::Eip,
            Kind::RouteTable,
            Kind::VpcEndpoint,
        ] {
            assert!(!kinds.contains(&k), "{k:?}");
        }
        let sg = g
            .resources()
            .find(|d| d.address.to_string() == "security_group.worker")
            .unwrap();
        assert_eq!(sg.attrs["vpc_id"], VPC);
        let svc = g
            .resources()
            .find(|d| d.address.kind == Kind::EcsService)
            .unwrap();
        let text = svc
            .attrs
            .values()
            .map(|v| v.to_string())
            .collect::<String>();
        assert!(text.contains(A) && text.contains(B), "{text}");
        assert_eq!(
            listed(s.network.existing.as_ref().unwrap()),
            [
                format!("vpc {VPC}"),
                format!("subnet {A}"),
                format!("subnet {B}")
            ]
        );
    }
}

#[cfg(test)]
mod existing_resources {
    use std::path::Path;

    use crate::model::Kind;

    const CLUSTER: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/platform";
    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prefect/key-AbCdEf";

    /// An existing cluster and secret are not resources of the graph; every place that names
    /// them names the given ARNs: the service, the worker's scoped permissions, the task events
    /// rule, the execution role's read, the task definition's `secrets`, the pool's template.
    #[test]
    fn an_existing_cluster_and_secret_are_named_by_their_arns_only() {
        let source = format!(
            "[stack]\nname = \"shared\"\nregion = \"us-east-1\"\n[prefect]\n\
             api_url = \"http://prefect.internal:4200/api\"\napi_key_env = \"PREFECT_API_KEY\"\n\
             [secret]\narn = \"{SECRET}\"\n[cluster]\narn = \"{CLUSTER}\"\n[[worker]]\nname = \"w\"\n"
        );
        let spec = crate::spec::parse(&source, Path::new("t.toml"), &|_| None, None)
            .unwrap_or_else(|e| panic!("{}", crate::spec::render_plain(&e)));
        assert_eq!(spec.cluster.name, "platform");
        assert_eq!(spec.secret.name, "prefect/key");
        let template = serde_json::from_str(include_str!("testdata/ecs-base-job-template.json"))
            .expect("template");
        let g = crate::graph::build(&spec, "us-east-1", None, Some(&template)).unwrap();
        assert!(
            g.resources()
                .all(|d| !matches!(d.address.kind, Kind::EcsCluster | Kind::Secret))
        );
        let text = |address: &str| {
            let d = g
                .resources()
                .find(|d| d.address.to_string() == address)
                .unwrap_or_else(|| panic!("{address}"));
            serde_json::to_string(&d.attrs).unwrap()
        };
        for (address, arn) in [
            ("ecs_service.w", CLUSTER),
            ("iam_role_policy.task", CLUSTER),
            ("event_rule.task_events", CLUSTER),
            ("iam_role_policy.execution", SECRET),
            ("ecs_task_definition.w", SECRET),
            ("prefect_work_pool.shared-w", CLUSTER),
            ("prefect_work_pool.shared-w", SECRET),
        ] {
            let t = text(address);
            assert!(t.contains(arn), "{address} does not name {arn}: {t}");
            assert!(
                !t.contains("ecs_cluster.main") && !t.contains("secret.api_key"),
                "{address}: {t}"
            );
        }
        let rendered = crate::spec::render::to_toml(&spec, "t.toml");
        assert!(
            rendered.contains(&format!("arn = \"{SECRET}\"")),
            "{rendered}"
        );
        assert!(
            rendered.contains(&format!("arn = \"{CLUSTER}\"")),
            "{rendered}"
        );
    }
}
