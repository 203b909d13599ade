//! Issue 13, adopt: the seeds' stack built the way they built it — with the SDK, untagged, the
//! reference design's names — with the classic hand-made mistakes (the secret's ARN in the
//! container's `environment` instead of `secrets`, no NAT route for one private subnet, the
//! execution role without its secret policy). `adopt` takes it over with no replacement of the
//! VPC, subnets, NAT or cluster; the apply it runs fixes exactly the mistakes; destroy then
//! removes it.

use std::collections::BTreeMap;

use crate::support::aws::{self, Aws, leftovers};
use crate::support::{EXECUTION_MANAGED_POLICY, IMAGE, TestStack, by_hand, moto};

/// The ids of what was built by hand.
struct Built {
    vpc: String,
    public: Vec<String>,
    private: Vec<String>,
    nat: String,
    private_table: String,
    cluster: String,
    secret: String,
}

/// The stack as the seeds made it: the spec's names and CIDRs, nothing tagged by prefect-ecs.
async fn build_by_hand(aws: &Aws, stack: &TestStack, spec: &prefect_ecs::spec::Spec) -> Built {
    let net = &spec.network;
    let vpc = by_hand::vpc(aws, &net.cidr.to_string()).await;
    by_hand::tag(aws, &vpc, "Name", &net.vpc_name).await;
    let igw = by_hand::internet_gateway(aws, &vpc).await;
    let (mut public, mut private) = (Vec::new(), Vec::new());
    for z in &net.zones {
        let cidr = z.public_cidr.to_string();
        public.push(by_hand::subnet(aws, &vpc, &cidr, &z.az, true).await);
        let cidr = z.private_cidr.to_string();
        private.push(by_hand::subnet(aws, &vpc, &cidr, &z.az, false).await);
    }
    let nat = by_hand::nat_gateway(aws, &public[0]).await;
    by_hand::route_table(aws, &vpc, &igw, &public).await;
    // Mistake 2: the last private subnet was never associated: it has no route out.
    let routed = &private[..private.len() - 1];
    let private_table = by_hand::route_table(aws, &vpc, &nat, routed).await;
    let sg = aws
        .ec2
        .create_security_group()
        .vpc_id(&vpc)
        .group_name(format!("{}-worker", stack.name))
        // Its own words: a group's description is fixed in EC2 and never a reason to replace it.
        .description("hand-made group for the prefect workers")
        .send()
        .await
        .expect("CreateSecurityGroup")
        .group_id()
        .expect("sg")
        .to_owned();

    let trust = by_hand::ecs_tasks_trust();
    let mut arns = BTreeMap::new();
    for role in [&spec.iam.execution_role_name, &spec.iam.task_role_name] {
        let arn = aws
            .iam
            .create_role()
            .role_name(role)
            .assume_role_policy_document(&trust)
            .send()
            .await
            .expect("CreateRole")
            .role()
            .map(|r| r.arn().to_owned())
            .expect("role");
        arns.insert(role.clone(), arn);
    }
    // Mistake 3: the managed policy only; nothing lets the execution role read the secret.
    aws.iam
        .attach_role_policy()
        .role_name(&spec.iam.execution_role_name)
        .policy_arn(EXECUTION_MANAGED_POLICY)
        .send()
        .await
        .expect("AttachRolePolicy");
    let secret = aws
        .secrets
        .create_secret()
        .name(&spec.secret.name)
        .description("Prefect API key for the prefect-ecs workers")
        .secret_string(stack.canary())
        .send()
        .await
        .expect("CreateSecret")
        .arn()
        .expect("secret")
        .to_owned();
    aws.logs
        .create_log_group()
        .log_group_name(&spec.logs.group)
        .send()
        .await
        .expect("CreateLogGroup");
    let cluster = aws
        .ecs
        .create_cluster()
        .cluster_name(&spec.cluster.name)
        .send()
        .await
        .expect("CreateCluster")
        .cluster()
        .and_then(|c| c.cluster_arn())
        .expect("cluster")
        .to_owned();
    let w = &spec.workers[0];
    use aws_sdk_ecs::types::{
        AssignPublicIp, AwsVpcConfiguration, Compatibility, ContainerDefinition, KeyValuePair,
        LaunchType, NetworkConfiguration, NetworkMode,
    };
    // Mistake 1: the secret's ARN as a plain environment variable, not a `secrets` reference.
    let container = ContainerDefinition::builder()
        .name("worker")
        .image(IMAGE)
        .essential(true)
        .command("prefect")
        .command("worker")
        .command("start")
        .command("--pool")
        .command(&w.work_pool)
        .command("--type")
        .command("ecs")
        .environment(
            KeyValuePair::builder()
                .name("PREFECT_API_KEY")
                .value(&secret)
                .build(),
        )
        .environment(
            KeyValuePair::builder()
                .name("PREFECT_API_URL")
                .value(&spec.prefect.api_url)
                .build(),
        )
        .build();
    let td = aws
        .ecs
        .register_task_definition()
        .family(&w.family)
        .cpu(w.cpu.to_string())
        .memory(w.memory.to_string())
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .execution_role_arn(&arns[&spec.iam.execution_role_name])
        .task_role_arn(&arns[&spec.iam.task_role_name])
        .container_definitions(container)
        .send()
        .await
        .expect("RegisterTaskDefinition")
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .expect("td")
        .to_owned();
    aws.ecs
        .create_service()
        .cluster(&cluster)
        .service_name(&w.name)
        .task_definition(&td)
        .desired_count(1)
        .launch_type(LaunchType::Fargate)
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(
                    AwsVpcConfiguration::builder()
                        .set_subnets(Some(private.clone()))
                        .security_groups(&sg)
                        .assign_public_ip(AssignPublicIp::Disabled)
                        .build()
                        .expect("awsvpc"),
                )
                .build(),
        )
        .send()
        .await
        .expect("CreateService");
    Built {
        vpc,
        public,
        private,
        nat,
        private_table,
        cluster,
        secret,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_takes_over_a_hand_built_stack_and_fixes_exactly_its_mistakes() {
    let aws = Aws::for_endpoint(&moto().endpoint).await;
    let stack = TestStack::new("adopt");
    let source = stack.spec_toml();
    let env = |k: &str| (k == "PREFECT_API_KEY").then(|| stack.canary().to_owned());
    let spec = prefect_ecs::spec::parse(
        &source,
        std::path::Path::new("spec.toml"),
        &env,
        Some(crate::support::REGION),
    )
    .expect("the test's spec");
    let built = build_by_hand(&aws, &stack, &spec).await;

    // Without adopting, the hand-built resources are others': refused by name.
    let out = stack.plan().assert_failed();
    assert!(
        out.stderr
            .contains(&format!("IAM role {}", spec.iam.execution_role_name)),
        "{out}"
    );

    // `plan --adopt` shows what adopt would do, and changes nothing.
    let preview = stack.run(&["plan", "--adopt"], &[]).assert_ok();
    assert!(
        preview.stderr.contains(&format!("vpc.main  {}", built.vpc)),
        "{preview}"
    );
    assert!(
        aws::Ec2Stack::load(&aws, &stack.name)
            .await
            .addresses()
            .is_empty()
    );

    let out = stack
        .run(&["adopt", "--auto-approve", "--no-wait"], &[])
        .assert_ok();
    let plan = &out.stdout;
    // No replacement of the VPC, the subnets, the NAT or the cluster.
    for line in plan.lines() {
        let replaced = line.trim_start().starts_with("-/+") || line.trim_start().starts_with("+/-");
        for kept in [
            "vpc.main",
            "subnet.",
            "nat_gateway.",
            "eip.",
            "ecs_cluster.main",
            "internet_gateway.main",
        ] {
            assert!(
                !(replaced && line.contains(kept)),
                "replaced: {line}\n{out}"
            );
        }
        // A resource deleted (not an attribute removed, which is indented further).
        assert!(!line.starts_with("  - "), "deleted: {line}\n{out}");
    }
    // The mistakes, each in the plan.
    assert!(plan.contains("  + iam_role_policy.execution"), "{out}");
    // The hand-built service is kept: its registration in Cloud Map is added in place.
    let service = format!("ecs_service.{}", spec.workers[0].name);
    assert!(plan.contains(&format!("  ~ {service}\n")), "{out}");
    let last = built.private.last().expect("private subnets");
    assert!(
        plan.contains(&format!(
            "  ~ route_table.private[0]\n    + subnet_ids: \"{last}\""
        )),
        "{out}"
    );
    assert!(
        plan.contains(&format!(
            "    - container.environment[PREFECT_API_KEY]: \"{}\"",
            built.secret
        )) && plan.contains("    + container.secrets: {"),
        "{out}"
    );
    // What adopt takes over is listed, each with what it was matched by.
    assert!(
        out.stderr.contains(&format!(
            "vpc.main  {} (Name {}, CIDR {})",
            built.vpc, spec.network.vpc_name, spec.network.cidr
        )) && out.stderr.contains(&format!(
            "nat_gateway.nat[0]  {} (in subnet.public[0])",
            built.nat
        )) && out.stderr.contains(&format!(
            "iam_role.execution  {} (by name)",
            spec.iam.execution_role_name
        )),
        "{out}"
    );

    // Adopted in place: the same ids, now the stack's.
    let ec2 = aws::Ec2Stack::load(&aws, &stack.name).await;
    assert_eq!(
        aws::at(&ec2.vpcs, "vpc.main").vpc_id(),
        Some(built.vpc.as_str())
    );
    for (tier, ids) in [("public", &built.public), ("private", &built.private)] {
        for (i, id) in ids.iter().enumerate() {
            let s = aws::at(&ec2.subnets, &format!("subnet.{tier}[{i}]"));
            assert_eq!(s.subnet_id(), Some(id.as_str()));
        }
    }
    let nat = aws::at(&ec2.nat_gateways, "nat_gateway.nat[0]");
    assert_eq!(nat.nat_gateway_id(), Some(built.nat.as_str()));
    let table = aws::at(&ec2.route_tables, "route_table.private[0]");
    assert_eq!(table.route_table_id(), Some(built.private_table.as_str()));
    let (c, tags) = aws::cluster(&aws, &spec.cluster.name)
        .await
        .expect("cluster");
    assert_eq!(c.cluster_arn(), Some(built.cluster.as_str()));
    aws::assert_owned(&tags, &stack.name, "ecs_cluster.main");
    assert_eq!(aws::secret_arn(&aws, &spec.secret.name).await, built.secret);

    // Mistake 2 fixed: every private subnet is routed through the NAT.
    let tables = aws
        .ec2
        .describe_route_tables()
        .route_table_ids(&built.private_table)
        .send()
        .await
        .expect("DescribeRouteTables");
    let associated: Vec<&str> = tables.route_tables()[0]
        .associations()
        .iter()
        .filter_map(|a| a.subnet_id())
        .collect();
    for s in &built.private {
        assert!(
            associated.contains(&s.as_str()),
            "{s} not routed: {associated:?}"
        );
    }
    // Mistake 3 fixed: the execution role reads the secret.
    let policies = aws::inline_policies(&aws, &spec.iam.execution_role_name).await;
    let allowed: Vec<_> = policies.iter().flat_map(aws::allowed).collect();
    assert!(
        allowed.contains(&(
            "secretsmanager:GetSecretValue".to_owned(),
            built.secret.clone()
        )),
        "{allowed:?}"
    );
    // Mistake 1 fixed: the key arrives through `secrets`, and no environment variable holds it.
    let service = aws::ecs_service(&aws, &spec.cluster.name, &spec.workers[0].name)
        .await
        .expect("service");
    let (td, _) = aws::task_definition(&aws, service.task_definition().expect("td")).await;
    let container = &td.container_definitions()[0];
    assert!(
        container
            .environment()
            .iter()
            .all(|e| e.name() != Some("PREFECT_API_KEY"))
    );
    assert_eq!(container.secrets()[0].value_from(), built.secret);

    // Converged, then gone. Adopting again finds nothing more: the stack owns its VPC now.
    stack.run(&["plan", "--detailed-exitcode"], &[]).assert_ok();
    let again = stack
        .run(&["plan", "--adopt", "--detailed-exitcode"], &[])
        .assert_ok();
    assert!(
        again
            .stderr
            .contains("adopt: nothing built outside prefect-ecs matches the spec"),
        "{again}"
    );
    stack.destroy().assert_ok();
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&built.vpc)
                .build(),
        )
        .send()
        .await
        .expect("DescribeVpcs");
    assert!(
        vpcs.vpcs().is_empty(),
        "the adopted VPC is destroyed with the stack"
    );
}

/// Adoption is refused where it cannot tell: two VPCs with the spec's Name and CIDR are both
/// named; a resource tagged for another stack is never taken, adopt or not.
#[tokio::test(flavor = "multi_thread")]
async fn adopt_refuses_what_is_ambiguous_and_what_another_stack_owns() {
    let aws = Aws::for_endpoint(&moto().endpoint).await;
    let stack = TestStack::new("adopt-refused");
    let mut vpcs = Vec::new();
    for _ in 0..2 {
        let id = aws
            .ec2
            .create_vpc()
            .cidr_block(&stack.cidr)
            .send()
            .await
            .expect("CreateVpc")
            .vpc()
            .and_then(|v| v.vpc_id())
            .expect("vpc")
            .to_owned();
        by_hand::tag(&aws, &id, "Name", &stack.vpc_name()).await;
        vpcs.push(id);
    }
    let out = stack.run(&["plan", "--adopt"], &[]).assert_failed();
    assert!(
        out.stderr.contains(&format!(
            "adopt: 2 VPCs are named {} with CIDR {}",
            stack.vpc_name(),
            stack.cidr
        )) && vpcs.iter().all(|v| out.stderr.contains(v.as_str())),
        "{out}"
    );
    aws.ec2
        .delete_vpc()
        .vpc_id(&vpcs[1])
        .send()
        .await
        .expect("DeleteVpc");
    let vpc = &vpcs[0];

    // One VPC now, but a subnet in another zone than the spec's (a replacement): adopt stops
    // before changing anything, naming it.
    let spec = prefect_ecs::spec::parse(
        &stack.spec_toml(),
        std::path::Path::new("spec.toml"),
        &|_| Some("x".into()),
        Some(crate::support::REGION),
    )
    .expect("the test's spec");
    let zone = &spec.network.zones[0];
    let block = zone.public_cidr.to_string();
    let moved = by_hand::subnet(&aws, vpc, &block, &spec.network.zones[1].az, true).await;
    let out = stack
        .run(&["adopt", "--auto-approve", "--no-wait"], &[])
        .assert_failed();
    assert!(
        out.stderr.contains(
            "adopting would replace or delete what was built by hand, nothing was changed"
        ) && out
            .stderr
            .contains("subnet.public[0] would be replaced: availability_zone differ"),
        "{out}"
    );
    assert!(
        aws::Ec2Stack::load(&aws, &stack.name)
            .await
            .addresses()
            .is_empty()
    );
    by_hand::delete_subnet(&aws, &moved).await;

    // A route table that also serves a subnet the spec does not describe is not taken.
    let public = by_hand::subnet(&aws, vpc, &block, &zone.az, true).await;
    let other = stack.cidr.replace(".0.0/16", ".250.0/24");
    let db = by_hand::subnet(&aws, vpc, &other, &zone.az, false).await;
    let igw = by_hand::internet_gateway(&aws, vpc).await;
    let table = by_hand::route_table(&aws, vpc, &igw, &[public.clone(), db.clone()]).await;
    let out = stack.run(&["plan", "--adopt"], &[]).assert_failed();
    assert!(
        out.stderr.contains(&format!(
            "adopt: route table {table} (route_table.public) also serves {db}, which the spec \
             does not describe"
        )),
        "{out}"
    );
    by_hand::teardown(&aws, vpc).await;

    // A role of another prefect-ecs stack with the name the spec wants: a conflict still.
    let trust = by_hand::ecs_tasks_trust();
    aws.iam
        .create_role()
        .role_name(stack.task_role())
        .assume_role_policy_document(trust)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("prefect-ecs:stack")
                .value("someone-else")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("CreateRole");
    let out = stack.run(&["plan", "--adopt"], &[]).assert_failed();
    assert!(
        out.stderr.contains(&format!(
            "IAM role {} exists and is owned by prefect-ecs stack \"someone-else\"",
            stack.task_role()
        )),
        "{out}"
    );
    aws.iam
        .delete_role()
        .role_name(stack.task_role())
        .send()
        .await
        .expect("DeleteRole");
}
