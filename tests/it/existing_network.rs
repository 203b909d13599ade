//! Issue 13, an existing network: a VPC built beforehand (here with the SDK, as a platform team
//! would with Terraform), named by `[network] vpc_id` and `private_subnet_ids`. The plan refuses
//! subnets that cannot reach the internet, naming the one and its (main) route table; once
//! routed, the stack goes into it without tagging, changing or deleting any of it.

use aws_sdk_ec2::types::Filter;

use crate::support::aws::{self, Aws, leftovers};
use crate::support::{TestStack, by_hand, moto};

/// What the network's builder made: ids, and every EC2 resource's tags as they were.
struct Network {
    vpc: String,
    a: String,
    b: String,
    private_table: String,
    nat: String,
}

async fn build(aws: &Aws, cidr: &str) -> Network {
    let vpc = by_hand::vpc(aws, cidr).await;
    by_hand::tag(aws, &vpc, "team", "platform").await;
    let igw = by_hand::internet_gateway(aws, &vpc).await;
    let base = cidr.split('.').take(2).collect::<Vec<_>>().join(".");
    let public = by_hand::subnet(aws, &vpc, &format!("{base}.0.0/24"), "us-east-1a", true).await;
    let a = by_hand::subnet(aws, &vpc, &format!("{base}.10.0/24"), "us-east-1a", false).await;
    let b = by_hand::subnet(aws, &vpc, &format!("{base}.11.0/24"), "us-east-1b", false).await;
    let nat = by_hand::nat_gateway(aws, &public).await;
    by_hand::route_table(aws, &vpc, &igw, std::slice::from_ref(&public)).await;
    // The hand-made mistake: only subnet A is associated; B falls to the main table, which
    // has no default route.
    let private_table = by_hand::route_table(aws, &vpc, &nat, std::slice::from_ref(&a)).await;
    Network {
        vpc,
        a,
        b,
        private_table,
        nat,
    }
}

/// Every EC2 resource of the VPC with its tags: what must be the same after the stack came
/// and went (security groups aside: the stack's own is made in the VPC).
async fn inventory(aws: &Aws, vpc: &str) -> Vec<String> {
    let by_vpc = Filter::builder().name("vpc-id").values(vpc).build();
    let mut out = Vec::new();
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .vpc_ids(vpc)
        .send()
        .await
        .expect("DescribeVpcs");
    for v in vpcs.vpcs() {
        out.push(format!(
            "{} {:?} {:?}",
            vpc,
            v.state(),
            aws::ec2_tags(v.tags())
        ));
    }
    let subnets = aws
        .ec2
        .describe_subnets()
        .filters(by_vpc.clone())
        .send()
        .await
        .expect("DescribeSubnets");
    for s in subnets.subnets() {
        out.push(format!("{:?} {:?}", s.subnet_id(), aws::ec2_tags(s.tags())));
    }
    let tables = aws
        .ec2
        .describe_route_tables()
        .filters(by_vpc.clone())
        .send()
        .await
        .expect("DescribeRouteTables");
    for t in tables.route_tables() {
        let routes: Vec<String> = t
            .routes()
            .iter()
            .map(|r| {
                format!(
                    "{:?}>{:?}{:?}",
                    r.destination_cidr_block(),
                    r.gateway_id(),
                    r.nat_gateway_id()
                )
            })
            .collect();
        let assoc: Vec<Option<&str>> = t.associations().iter().map(|a| a.subnet_id()).collect();
        out.push(format!(
            "{:?} {routes:?} {assoc:?} {:?}",
            t.route_table_id(),
            aws::ec2_tags(t.tags())
        ));
    }
    let nats = aws
        .ec2
        .describe_nat_gateways()
        .filter(by_vpc)
        .send()
        .await
        .expect("DescribeNatGateways");
    for n in nats.nat_gateways() {
        out.push(format!(
            "{:?} {:?} {:?}",
            n.nat_gateway_id(),
            n.state(),
            n.tags()
        ));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_goes_into_an_existing_vpc_and_leaves_it_as_it_was() {
    let aws = Aws::for_endpoint(&moto().endpoint).await;
    let mut stack = TestStack::new("existing-vpc");
    let net = build(&aws, &stack.cidr.clone()).await;
    stack.network_table = Some(format!(
        "[network]\nvpc_id = \"{}\"\nprivate_subnet_ids = [\"{}\", \"{}\"]\n",
        net.vpc, net.a, net.b
    ));
    let before = inventory(&aws, &net.vpc).await;

    // Subnet B has no route out: refused before anything is made, naming it and its table.
    let out = stack.plan().assert_failed();
    assert!(
        out.stderr.contains(&format!(
            "the existing network [network] vpc_id = \"{}\" cannot run the workers, nothing was changed",
            net.vpc
        )),
        "{out}"
    );
    assert!(
        out.stderr
            .contains(&format!("{}: its route table rtb-", net.b))
            && out.stderr.contains(
                "(the VPC's main table: the subnet has no table of its own) sends 0.0.0.0/0 nowhere"
            ),
        "{out}"
    );
    assert!(
        !out.stderr.contains(&format!("{}: its route table", net.a)),
        "{out}"
    );
    let out = stack.run(&["verify"], &[]);
    assert!(out.stdout.contains("FAIL  route to the internet"), "{out}");
    assert!(
        out.stdout
            .contains("ok    availability zones: 2 (us-east-1a, us-east-1b)"),
        "{out}"
    );
    assert!(
        aws::Ec2Stack::load(&aws, &stack.name)
            .await
            .addresses()
            .is_empty()
    );

    // Routed: the plan reads the network and makes none of it.
    by_hand::associate(&aws, &net.private_table, &net.b).await;
    let routed = inventory(&aws, &net.vpc).await;
    assert_ne!(routed, before, "the association shows");
    let before = routed;
    let out = stack.plan().assert_ok();
    assert!(
        out.stdout
            .contains(&format!("  = vpc {}  (existing, read-only)", net.vpc))
            && out
                .stdout
                .contains(&format!("  = subnet {}  (existing, read-only)", net.b)),
        "{out}"
    );
    for kind in [
        "vpc.main",
        "subnet.",
        "nat_gateway.",
        "route_table.",
        "internet_gateway.",
        "eip.",
    ] {
        assert!(!out.stdout.contains(&format!("+ {kind}")), "{kind}:\n{out}");
    }
    let json = stack.run(&["plan", "--json"], &[]).assert_ok();
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("plan JSON");
    assert_eq!(doc["existing"][0], format!("vpc {}", net.vpc).as_str());

    stack.apply().assert_ok();
    // The stack's group is in the VPC; the worker runs in exactly the listed subnets.
    let groups = aws
        .ec2
        .describe_security_groups()
        .filters(
            Filter::builder()
                .name("group-name")
                .values(format!("{}-worker", stack.name))
                .build(),
        )
        .send()
        .await
        .expect("DescribeSecurityGroups");
    let sg = &groups.security_groups()[0];
    assert_eq!(sg.vpc_id(), Some(net.vpc.as_str()));
    let service = aws::ecs_service(&aws, &stack.cluster(), stack.worker(0))
        .await
        .expect("service");
    let vpc_config = service
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
        .expect("awsvpc");
    let mut subnets = vpc_config.subnets().to_vec();
    subnets.sort();
    let mut want = vec![net.a.clone(), net.b.clone()];
    want.sort();
    assert_eq!(subnets, want);
    let pool = crate::support::prefect::prefect()
        .pool(&stack.workers[0].work_pool)
        .expect("pool");
    let defaults = &pool["base_job_template"]["variables"]["properties"];
    assert_eq!(defaults["vpc_id"]["default"], net.vpc.as_str());
    stack.run(&["plan", "--detailed-exitcode"], &[]).assert_ok();
    let out = stack.run(&["output", "--raw", "vpc_id"], &[]).assert_ok();
    assert_eq!(out.stdout.trim(), net.vpc);
    let out = stack.run(&["verify"], &[]);
    assert!(
        out.stdout.contains(
            "ok    route to the internet: every subnet has a route to an available NAT gateway"
        ),
        "{out}"
    );

    // Gone again; the network is as its builder left it (NAT included).
    stack.destroy().assert_ok();
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
    let after = inventory(&aws, &net.vpc).await;
    assert_eq!(after, before);
    assert!(
        after
            .iter()
            .any(|l| l.contains(&net.nat) && l.contains("Available")),
        "{after:?}"
    );
}

/// Issue 13: an existing ECS cluster and an existing secret, by ARN. The workers run in that
/// cluster and read that secret; prefect-ecs never reads nor writes the secret's value (the key
/// in PREFECT_API_KEY serves the Prefect API only), and destroy leaves both as they were.
#[tokio::test(flavor = "multi_thread")]
async fn workers_run_in_an_existing_cluster_with_an_existing_secret_left_as_they_were() {
    let aws = Aws::for_endpoint(&moto().endpoint).await;
    let stack = TestStack::new("existing-ecs");
    let cluster = aws
        .ecs
        .create_cluster()
        .cluster_name(format!("{}-platform", stack.name))
        .send()
        .await
        .expect("CreateCluster")
        .cluster()
        .and_then(|c| c.cluster_arn())
        .expect("cluster arn")
        .to_owned();
    let value = format!("pnu_platform_{}", stack.name);
    let secret = aws
        .secrets
        .create_secret()
        .name(format!("platform/{}", stack.name))
        .secret_string(&value)
        .send()
        .await
        .expect("CreateSecret")
        .arn()
        .expect("secret arn")
        .to_owned();
    let mut stack = stack;
    stack.forbid(&value);
    stack.extra = format!("[cluster]\narn = \"{cluster}\"\n\n[secret]\narn = \"{secret}\"\n");

    let out = stack.plan().assert_ok();
    for mine in ["+ ecs_cluster.main", "+ secret.api_key"] {
        assert!(!out.stdout.contains(mine), "{mine}:\n{out}");
    }
    for theirs in [format!("cluster {cluster}"), format!("secret {secret}")] {
        assert!(
            out.stdout
                .contains(&format!("  = {theirs}  (existing, read-only)")),
            "{theirs}:\n{out}"
        );
    }
    stack.apply().assert_ok();
    let service = aws::ecs_service(&aws, &cluster, stack.worker(0))
        .await
        .expect("the worker's service in the existing cluster");
    assert_eq!(service.cluster_arn(), Some(cluster.as_str()));
    let (td, _) = aws::task_definition(&aws, service.task_definition().expect("td")).await;
    let secrets = td.container_definitions()[0].secrets();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].name(), "PREFECT_API_KEY");
    assert_eq!(secrets[0].value_from(), secret);
    // The key prefect-ecs was given is not the workers': it never went into the secret.
    assert_eq!(aws::secret_value(&aws, &secret).await, value);
    let pool = crate::support::prefect::prefect()
        .pool(&stack.workers[0].work_pool)
        .expect("pool");
    let props = &pool["base_job_template"]["variables"]["properties"];
    assert_eq!(props["cluster"]["default"], cluster.as_str());
    assert_eq!(
        props["prefect_api_key_secret_arn"]["default"],
        secret.as_str()
    );
    stack.run(&["plan", "--detailed-exitcode"], &[]).assert_ok();
    let out = stack
        .run(&["output", "--raw", "cluster_arn"], &[])
        .assert_ok();
    assert_eq!(out.stdout.trim(), cluster);

    // The value is the platform's; then the platform deletes the secret. A plan to the spec
    // refuses that, naming it; destroy does not need it.
    assert_eq!(aws::secret_value(&aws, &secret).await, value);
    aws.secrets
        .delete_secret()
        .secret_id(&secret)
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("DeleteSecret");
    let out = stack.plan().assert_failed();
    assert!(
        out.stderr.contains(&format!(
            "[secret] arn {secret}: no such secret in Secrets Manager"
        )),
        "{out}"
    );
    stack.destroy().assert_ok();
    let (c, tags) = aws::cluster(&aws, &format!("{}-platform", stack.name))
        .await
        .expect("cluster");
    assert_eq!(c.status(), Some("ACTIVE"));
    assert!(tags.is_empty(), "never tagged: {tags:?}");
    let service = aws::ecs_service(&aws, &cluster, stack.worker(0)).await;
    assert!(
        service
            .as_ref()
            .is_none_or(|s| s.status() == Some("INACTIVE")),
        "{service:?}"
    );

    // A cluster or secret that is not there is named before anything changes.
    let gone = cluster.replace("-platform", "-gone");
    stack.extra = format!("[cluster]\narn = \"{gone}\"\n\n[secret]\narn = \"{secret}\"\n");
    let out = stack.plan().assert_failed();
    assert!(
        out.stderr
            .contains(&format!("[cluster] arn {gone}: no such active ECS cluster")),
        "{out}"
    );
}

/// The subnets of an existing VPC found by their tags: what the tags select is checked and
/// planned as if listed; no subnet with them is an error naming the tags.
#[tokio::test(flavor = "multi_thread")]
async fn subnets_found_by_their_tags_are_checked_and_planned_as_listed() {
    let aws = Aws::for_endpoint(&moto().endpoint).await;
    let mut stack = TestStack::new("subnet-tags");
    let net = build(&aws, &stack.cidr.clone()).await;
    for s in [&net.a, &net.b] {
        by_hand::tag(&aws, s, "tier", "workers").await;
    }
    let table = |tier: &str| {
        format!(
            "[network]\nvpc_id = \"{}\"\nprivate_subnet_tags = {{ tier = \"{tier}\" }}\n",
            net.vpc
        )
    };
    stack.network_table = Some(table("workers"));
    // B is selected by its tag, and its missing route is found.
    let out = stack.plan().assert_failed();
    assert!(
        out.stderr.contains(&format!("{}: its route table", net.b)),
        "{out}"
    );
    by_hand::associate(&aws, &net.private_table, &net.b).await;
    let out = stack.plan().assert_ok();
    for s in [&net.a, &net.b] {
        assert!(
            out.stdout
                .contains(&format!("  = subnet {s}  (existing, read-only)")),
            "{out}"
        );
    }
    let rendered = stack.run(&["render"], &[]).assert_ok();
    assert!(
        rendered
            .stdout
            .contains("private_subnet_tags = { tier = \"workers\" }"),
        "{rendered}"
    );
    stack.network_table = Some(table("nobody"));
    let out = stack.plan().assert_failed();
    assert!(
        out.stderr
            .contains(&format!("no subnet of {} is tagged tier=nobody", net.vpc)),
        "{out}"
    );
}
