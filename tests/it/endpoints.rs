//! VPC endpoints (issue 14): the S3 gateway endpoint every stack gets and opt-in interface
//! endpoints with their own security group, through the realism proxy, which keeps an interface
//! endpoint `pending` for its minutes (scaled) and its ENIs on the subnets and the group after
//! it is deleted, as AWS does.

use std::time::Duration;

use aws_sdk_ec2::types::VpcEndpoint;

use crate::proxy::model::Span;
use crate::proxy::{Config, Injected, Proxy};
use crate::realism::block_on;
use crate::support::aws::{Aws, Ec2Stack, at, ec2_tags, leftovers};
use crate::support::plan::{self, Action};
use crate::support::{TestStack, moto};

const TIME_SCALE: f64 = 0.005;

fn sorted(ids: &[String]) -> Vec<String> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids
}

fn id(e: &VpcEndpoint) -> String {
    e.vpc_endpoint_id().expect("endpoint id").to_owned()
}

#[test]
fn endpoints_are_created_kept_repaired_and_destroyed() {
    let aws = block_on(Aws::new());
    let mut config = Config::realistic(21, TIME_SCALE);
    // ENIs that outlive their endpoint long enough to meet the subnets' deletes.
    config.timings.eni_linger = Span::fixed(Duration::from_millis(2500));
    let proxy = Proxy::start(&moto().endpoint, config);
    let mut stack = TestStack::new("endpoints");
    stack.interface_endpoints = vec!["ecr.api", "logs"];
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint())];

    let out = stack.run(&["apply", "--auto-approve"], &env).assert_ok();
    // The plan says the gateway endpoint is free and prices the interface ones per zone.
    assert!(out.stdout.contains("gateway endpoint: free"), "{out}");
    assert!(
        out.stdout
            .contains("interface endpoint, 3 AZ × 730 h × $0.01"),
        "{out}"
    );
    // An interface endpoint is waited for while AWS shows it pending, and the progress says so.
    for service in ["ecr.api", "logs"] {
        let waiting = format!("vpc_endpoint.{service}: waiting for VPC endpoint vpce-");
        let seen = out
            .stdout
            .lines()
            .any(|l| l.contains(&waiting) && l.contains("available: pending"));
        assert!(seen, "no wait for {service} while pending:\n{out}");
    }

    let ec2 = block_on(Ec2Stack::load(&aws, &stack.name));
    let vpc_id = at(&ec2.vpcs, "vpc.main").vpc_id().unwrap().to_owned();
    let private_rt = at(&ec2.route_tables, "route_table.private[0]")
        .route_table_id()
        .unwrap()
        .to_owned();
    let private_subnets: Vec<String> = (0..3)
        .map(|i| {
            at(&ec2.subnets, &format!("subnet.private[{i}]"))
                .subnet_id()
                .unwrap()
                .to_owned()
        })
        .collect();
    let group = at(&ec2.security_groups, "security_group.endpoints");
    let group_id = group.group_id().unwrap().to_owned();

    let s3 = at(&ec2.vpc_endpoints, "vpc_endpoint.s3");
    assert_eq!(s3.vpc_id(), Some(vpc_id.as_str()));
    assert_eq!(s3.service_name(), Some("com.amazonaws.us-east-1.s3"));
    assert_eq!(s3.vpc_endpoint_type().map(|t| t.as_str()), Some("Gateway"));
    assert_eq!(s3.route_table_ids(), std::slice::from_ref(&private_rt));
    let tags = ec2_tags(s3.tags());
    assert_eq!(tags.get("prefect-ecs:stack"), Some(&stack.name));
    assert_eq!(tags.get("Name"), Some(&format!("{}-s3", stack.name)));
    for service in ["ecr.api", "logs"] {
        let e = at(&ec2.vpc_endpoints, &format!("vpc_endpoint.{service}"));
        assert_eq!(
            e.service_name(),
            Some(format!("com.amazonaws.us-east-1.{service}").as_str())
        );
        assert_eq!(e.vpc_endpoint_type().map(|t| t.as_str()), Some("Interface"));
        assert_eq!(sorted(e.subnet_ids()), sorted(&private_subnets));
        let groups: Vec<&str> = e.groups().iter().filter_map(|g| g.group_id()).collect();
        assert_eq!(groups, [group_id.as_str()]);
        assert_eq!(e.private_dns_enabled(), Some(true));
    }
    // HTTPS in from the private subnets only; nothing out.
    let mut ingress: Vec<(String, i32, i32, String)> = group
        .ip_permissions()
        .iter()
        .flat_map(|p| {
            p.ip_ranges().iter().map(move |r| {
                (
                    p.ip_protocol().unwrap_or_default().to_owned(),
                    p.from_port().unwrap_or(-1),
                    p.to_port().unwrap_or(-1),
                    r.cidr_ip().unwrap_or_default().to_owned(),
                )
            })
        })
        .collect();
    ingress.sort();
    let mut private_cidrs: Vec<String> = (0..3)
        .map(|i| {
            at(&ec2.subnets, &format!("subnet.private[{i}]"))
                .cidr_block()
                .unwrap()
                .to_owned()
        })
        .collect();
    private_cidrs.sort();
    let expected: Vec<_> = private_cidrs
        .iter()
        .map(|c| ("tcp".to_owned(), 443, 443, c.clone()))
        .collect();
    assert_eq!(ingress, expected);
    assert!(group.ip_permissions_egress().is_empty(), "{group:?}");

    // The S3 endpoint's route in the private table is the endpoint's, not drift of the table.
    let out = stack.run(&["plan"], &env).assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");

    // Out of band: one zone taken off an interface endpoint, the route table off the gateway.
    let logs_id = id(at(&ec2.vpc_endpoints, "vpc_endpoint.logs"));
    block_on(
        aws.ec2
            .modify_vpc_endpoint()
            .vpc_endpoint_id(&logs_id)
            .remove_subnet_ids(&private_subnets[1])
            .send(),
    )
    .expect("ModifyVpcEndpoint");
    block_on(
        aws.ec2
            .modify_vpc_endpoint()
            .vpc_endpoint_id(id(s3))
            .remove_route_table_ids(&private_rt)
            .send(),
    )
    .expect("ModifyVpcEndpoint");
    let out = stack
        .run(&["plan", "--detailed-exitcode"], &env)
        .assert_code(2);
    let changes = plan::changes(&out.stdout);
    assert_eq!(
        changes.get("vpc_endpoint.logs"),
        Some(&Action::Update),
        "{out}"
    );
    assert_eq!(
        changes.get("vpc_endpoint.s3"),
        Some(&Action::Update),
        "{out}"
    );
    assert_eq!(changes.len(), 2, "{out}");
    stack.run(&["apply", "--auto-approve"], &env).assert_ok();
    let ec2 = block_on(Ec2Stack::load(&aws, &stack.name));
    let logs = at(&ec2.vpc_endpoints, "vpc_endpoint.logs");
    assert_eq!(id(logs), logs_id, "repaired in place, not replaced");
    assert_eq!(sorted(logs.subnet_ids()), sorted(&private_subnets));
    assert_eq!(
        at(&ec2.vpc_endpoints, "vpc_endpoint.s3").route_table_ids(),
        std::slice::from_ref(&private_rt)
    );
    let out = stack.run(&["plan"], &env).assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");

    // Taken out of the spec: deleted, and nothing else changes.
    stack.interface_endpoints = vec!["ecr.api"];
    let out = stack
        .run(&["plan", "--detailed-exitcode"], &env)
        .assert_code(2);
    let changes = plan::changes(&out.stdout);
    assert_eq!(
        changes.into_iter().collect::<Vec<_>>(),
        [("vpc_endpoint.logs".to_owned(), Action::Delete)],
        "{out}"
    );
    stack.run(&["apply", "--auto-approve"], &env).assert_ok();
    let ec2 = block_on(Ec2Stack::load(&aws, &stack.name));
    assert!(!ec2.vpc_endpoints.contains_key("vpc_endpoint.logs"));
    assert!(ec2.vpc_endpoints.contains_key("vpc_endpoint.ecr.api"));

    // Destroy waits for the endpoints to be deleted and for their ENIs to let go.
    proxy.reset_log();
    let out = stack.run(&["destroy", "--auto-approve"], &env).assert_ok();
    let refused = proxy
        .calls()
        .iter()
        .filter(|c| {
            ["DeleteSubnet", "DeleteSecurityGroup"].contains(&c.operation.as_str())
                && c.injected == Some(Injected::Refused("DependencyViolation"))
        })
        .count();
    assert!(refused > 0, "no ENI held a subnet or the group:\n{out}");
    assert_eq!(block_on(leftovers(&aws, &stack)), Vec::<String>::new());
}
