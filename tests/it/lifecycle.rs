//! A stack's whole life: plan from empty, apply, every resource as the contract describes it,
//! converged plan, destroy, nothing left; and the refusal to act without `--auto-approve`.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{DomainType, NatGatewayState, VpcAttributeName};
use aws_sdk_ecs::types::{AssignPublicIp, Compatibility, LaunchType, LogDriver, NetworkMode};
use aws_sdk_servicediscovery::types::NamespaceType;
use ipnet::Ipv4Net;

use crate::support::aws::{
    Aws, Ec2Stack, allowed, assert_owned, at, attached_policies, cluster, discovery_services_named,
    discovery_tags, ec2_tags, ecs_service, ecs_tags, event_rule, inline_policies, leftovers,
    log_group, namespaces_named, queue, role, secret_value, task_definition, trusts_service,
};
use crate::support::plan::{self, Action};
use crate::support::prefect::{default_of, prefect};
use crate::support::{AZS, EXECUTION_MANAGED_POLICY, IMAGE, REGION, TestStack};
use serde_json::json;

const TASK_ROLE_ACTIONS: [&str; 10] = [
    "ecs:RunTask",
    "ecs:StopTask",
    "ecs:DescribeTasks",
    "ecs:RegisterTaskDefinition",
    "ecs:DeregisterTaskDefinition",
    "ecs:DescribeTaskDefinition",
    "ecs:TagResource",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "logs:GetLogEvents",
];

#[tokio::test(flavor = "multi_thread")]
async fn apply_from_empty() {
    let aws = Aws::new().await;
    let stack = TestStack::new("empty");

    let out = stack.plan().assert_ok();
    let creates: BTreeMap<String, Action> = stack
        .addresses()
        .into_iter()
        .map(|a| (a, Action::Create))
        .collect();
    assert_eq!(plan::changes(&out.stdout), creates, "{out}");
    assert_eq!(
        plan::summary(&out.stdout),
        Some((creates.len() as u32, 0, 0)),
        "{out}"
    );
    assert_eq!(
        leftovers(&aws, &stack).await,
        Vec::<String>::new(),
        "plan created something"
    );

    stack.apply().assert_ok();
    assert_deployed(&aws, &stack).await;

    let out = stack.plan().assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");

    // Off a terminal, destroy must refuse rather than prompt or proceed.
    let out = stack.run(&["destroy", "--no-wait"], &[]).assert_failed();
    assert!(
        out.stdout.contains("--auto-approve") || out.stderr.contains("--auto-approve"),
        "{out}"
    );
    assert!(
        Ec2Stack::load(&aws, &stack.name)
            .await
            .vpcs
            .contains_key("vpc.main"),
        "destroy without --auto-approve deleted the VPC"
    );

    // Destroy is the inverse of creation also where no id shows the order (issue 10, defect
    // 2): the service is gone before the routes its tasks need and its roles' policies.
    let out = stack
        .run(&["destroy", "--auto-approve", "--no-wait", "--json"], &[])
        .assert_ok();
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let at = |kind: &str, address: &str| {
        events
            .iter()
            .position(|e| e["type"] == kind && e["address"] == address)
            .unwrap_or_else(|| panic!("no {kind} event for {address}:\n{out}"))
    };
    let service_gone = at("finished", &format!("ecs_service.{}", stack.worker(0)));
    for later in [
        "route_table.private[0]",
        "nat_gateway.nat[0]",
        "iam_role_policy.task",
        "iam_role_policy.execution",
    ] {
        assert!(
            at("started", later) > service_gone,
            "{later} was deleted before the service was gone:\n{out}"
        );
    }
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_refuses_without_auto_approve_off_terminal() {
    let aws = Aws::new().await;
    let stack = TestStack::new("noapprove");

    let out = stack.run(&["apply", "--no-wait"], &[]).assert_failed();
    assert!(
        out.stdout.contains("--auto-approve") || out.stderr.contains("--auto-approve"),
        "{out}"
    );
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
}

/// Checks, with direct SDK calls, every resource of a freshly applied single-NAT stack.
async fn assert_deployed(aws: &Aws, stack: &TestStack) {
    let ec2 = Ec2Stack::load(aws, &stack.name).await;
    let n = |map_len: usize, what: &str, expected: usize| {
        assert_eq!(map_len, expected, "{what}: {:?}", ec2.addresses());
    };
    n(ec2.vpcs.len(), "VPCs", 1);
    n(ec2.subnets.len(), "subnets", 6);
    n(ec2.internet_gateways.len(), "internet gateways", 1);
    n(ec2.eips.len(), "EIPs", 1);
    n(ec2.nat_gateways.len(), "NAT gateways", 1);
    n(ec2.route_tables.len(), "route tables", 2);
    n(ec2.security_groups.len(), "security groups", 1);
    n(
        ec2.vpc_endpoints.len(),
        "VPC endpoints (the S3 gateway's)",
        1,
    );

    let vpc = at(&ec2.vpcs, "vpc.main");
    let vpc_id = vpc.vpc_id().expect("VPC id");
    assert_eq!(vpc.cidr_block(), Some(stack.cidr.as_str()));
    assert_eq!(
        ec2_tags(vpc.tags()).get("Name"),
        Some(&stack.vpc_name()),
        "VPC Name tag"
    );
    for attribute in [
        VpcAttributeName::EnableDnsSupport,
        VpcAttributeName::EnableDnsHostnames,
    ] {
        let out = aws
            .ec2
            .describe_vpc_attribute()
            .vpc_id(vpc_id)
            .attribute(attribute.clone())
            .send()
            .await
            .expect("DescribeVpcAttribute");
        let value = out
            .enable_dns_support()
            .or(out.enable_dns_hostnames())
            .and_then(|v| v.value());
        assert_eq!(value, Some(true), "VPC {attribute:?}");
    }

    // Every EC2 resource is found by its address tag already; each also needs a Name.
    let names = ec2
        .vpcs
        .iter()
        .map(|(a, v)| (a, v.tags()))
        .chain(ec2.subnets.iter().map(|(a, v)| (a, v.tags())))
        .chain(ec2.internet_gateways.iter().map(|(a, v)| (a, v.tags())))
        .chain(ec2.eips.iter().map(|(a, v)| (a, v.tags())))
        .chain(ec2.nat_gateways.iter().map(|(a, v)| (a, v.tags())))
        .chain(ec2.route_tables.iter().map(|(a, v)| (a, v.tags())))
        .chain(ec2.security_groups.iter().map(|(a, v)| (a, v.tags())));
    for (address, tags) in names {
        let tags = ec2_tags(tags);
        assert_owned(&tags, &stack.name, address);
        assert!(
            tags.get("Name").is_some_and(|n| !n.is_empty()),
            "{address} has no Name tag: {tags:?}"
        );
    }

    let cidr: Ipv4Net = stack.cidr.parse().expect("stack CIDR");
    let slash20s: Vec<Ipv4Net> = cidr.subnets(20).expect("/20s").collect();
    let mut public_ids = BTreeSet::new();
    let mut private_ids = BTreeSet::new();
    for (i, az) in AZS.iter().enumerate() {
        for (tier, expected_cidr, public) in [
            ("public", slash20s[i], true),
            ("private", slash20s[8 + i], false),
        ] {
            let address = format!("subnet.{tier}[{i}]");
            let subnet = at(&ec2.subnets, &address);
            assert_eq!(subnet.vpc_id(), Some(vpc_id), "{address}");
            let actual: Ipv4Net = subnet.cidr_block().expect("CIDR").parse().expect("CIDR");
            assert!(cidr.contains(&actual), "{address} {actual} outside {cidr}");
            assert_eq!(actual, expected_cidr, "{address}");
            assert_eq!(subnet.availability_zone(), Some(*az), "{address}");
            assert_eq!(
                subnet.map_public_ip_on_launch().unwrap_or(false),
                public,
                "{address} MapPublicIpOnLaunch"
            );
            let id = subnet.subnet_id().expect("subnet id").to_owned();
            if public {
                public_ids.insert(id);
            } else {
                private_ids.insert(id);
            }
        }
    }

    let igw = at(&ec2.internet_gateways, "internet_gateway.main");
    let igw_id = igw.internet_gateway_id().expect("IGW id");
    assert!(
        igw.attachments().iter().any(|a| a.vpc_id() == Some(vpc_id)),
        "IGW not attached to the VPC: {igw:?}"
    );

    let eip = at(&ec2.eips, "eip.nat[0]");
    assert_eq!(eip.domain(), Some(&DomainType::Vpc));
    let nat = at(&ec2.nat_gateways, "nat_gateway.nat[0]");
    let nat_id = nat.nat_gateway_id().expect("NAT id");
    assert_ne!(nat.state(), Some(&NatGatewayState::Failed));
    assert!(
        public_ids.contains(nat.subnet_id().expect("NAT subnet")),
        "NAT not in a public subnet: {nat:?}"
    );
    assert!(
        nat.nat_gateway_addresses()
            .iter()
            .any(|a| a.allocation_id() == eip.allocation_id()),
        "NAT does not use eip.nat[0]: {nat:?}"
    );

    let associated = |rt: &aws_sdk_ec2::types::RouteTable| -> BTreeSet<String> {
        rt.associations()
            .iter()
            .filter_map(|a| a.subnet_id().map(str::to_owned))
            .collect()
    };
    let default_route = |rt: &aws_sdk_ec2::types::RouteTable| {
        rt.routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .cloned()
    };
    let public_rt = at(&ec2.route_tables, "route_table.public");
    assert_eq!(public_rt.vpc_id(), Some(vpc_id));
    let route = default_route(public_rt).expect("public default route");
    assert_eq!(route.gateway_id(), Some(igw_id), "public default route");
    assert_eq!(
        associated(public_rt),
        public_ids,
        "public route table associations"
    );
    let private_rt = at(&ec2.route_tables, "route_table.private[0]");
    assert_eq!(private_rt.vpc_id(), Some(vpc_id));
    let route = default_route(private_rt).expect("private default route");
    assert_eq!(
        route.nat_gateway_id(),
        Some(nat_id),
        "private default route"
    );
    assert_eq!(
        associated(private_rt),
        private_ids,
        "private route table associations"
    );

    let sg = at(&ec2.security_groups, "security_group.worker");
    let sg_id = sg.group_id().expect("SG id");
    assert_eq!(sg.vpc_id(), Some(vpc_id));
    assert!(sg.ip_permissions().is_empty(), "ingress rules: {sg:?}");
    let egress = sg.ip_permissions_egress();
    assert_eq!(egress.len(), 1, "egress rules: {egress:?}");
    assert_eq!(egress[0].ip_protocol(), Some("-1"));
    assert!(
        egress[0]
            .ip_ranges()
            .iter()
            .any(|r| r.cidr_ip() == Some("0.0.0.0/0")),
        "egress rules: {egress:?}"
    );

    let secret = aws
        .secrets
        .describe_secret()
        .secret_id(stack.secret_name())
        .send()
        .await
        .expect("DescribeSecret");
    let secret_arn = secret.arn().expect("secret ARN");
    let secret_tags = secret
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().into(),
                t.value().unwrap_or_default().into(),
            )
        })
        .collect();
    assert_owned(&secret_tags, &stack.name, "secret.api_key");
    // Compared, never printed: a failing assert_eq! would show the value.
    assert!(
        secret_value(aws, &stack.secret_name()).await == stack.canary(),
        "the secret does not hold PREFECT_API_KEY"
    );

    let (exec_arn, exec_trust, exec_tags) = role(aws, &stack.execution_role()).await;
    let (task_arn, task_trust, task_tags) = role(aws, &stack.task_role()).await;
    let (flow_arn, flow_trust, flow_tags) = role(aws, &stack.flow_run_role()).await;
    assert_owned(&flow_tags, &stack.name, "iam_role.flow_run");
    assert!(
        trusts_service(&flow_trust, "ecs-tasks.amazonaws.com"),
        "{flow_trust}"
    );
    assert_owned(&exec_tags, &stack.name, "iam_role.execution");
    assert_owned(&task_tags, &stack.name, "iam_role.task");
    for trust in [&exec_trust, &task_trust] {
        assert!(trusts_service(trust, "ecs-tasks.amazonaws.com"), "{trust}");
    }
    let attached = attached_policies(aws, &stack.execution_role()).await;
    assert!(attached.contains(EXECUTION_MANAGED_POLICY), "{attached:?}");
    let exec_inline = inline_policies(aws, &stack.execution_role()).await;
    assert_eq!(exec_inline.len(), 1, "{exec_inline:?}");
    assert_eq!(
        allowed(&exec_inline[0]),
        BTreeSet::from([(
            "secretsmanager:GetSecretValue".to_owned(),
            secret_arn.to_owned()
        )]),
        "execution role inline policy"
    );
    let task_inline = inline_policies(aws, &stack.task_role()).await;
    assert_eq!(task_inline.len(), 1, "{task_inline:?}");
    let grants = allowed(&task_inline[0]);
    for action in TASK_ROLE_ACTIONS {
        assert!(
            grants.iter().any(|(a, _)| a == action),
            "task role lacks {action}: {grants:?}"
        );
    }
    let pass_role: BTreeSet<&str> = grants
        .iter()
        .filter(|(a, _)| a == "iam:PassRole")
        .map(|(_, r)| r.as_str())
        .collect();
    // Exactly the roles of the flow-run tasks the worker launches: not its own, not `*`.
    assert_eq!(
        pass_role,
        BTreeSet::from([exec_arn.as_str(), flow_arn.as_str()]),
        "iam:PassRole resources"
    );

    let namespaces = namespaces_named(aws, &stack.namespace()).await;
    assert_eq!(namespaces.len(), 1, "{namespaces:?}");
    let namespace = &namespaces[0];
    assert_eq!(namespace.r#type(), Some(&NamespaceType::DnsPrivate));
    assert_owned(
        &discovery_tags(aws, namespace.arn().expect("namespace ARN")).await,
        &stack.name,
        "service_discovery_namespace.main",
    );

    let (_, retention, log_tags) = log_group(aws, &stack.log_group()).await.expect("log group");
    assert_eq!(retention, Some(30));
    assert_owned(&log_tags, &stack.name, "log_group.workers");

    let (ecs_cluster, cluster_tags) = cluster(aws, &stack.cluster()).await.expect("cluster");
    assert_eq!(ecs_cluster.status(), Some("ACTIVE"));
    assert_owned(&cluster_tags, &stack.name, "ecs_cluster.main");

    // Crash detection (issue 11, item 2): the cluster's task state changes go to a queue
    // only the stack's rule may send to, and the worker may read it.
    let (_, queue_attrs, queue_tags) = queue(aws, &stack.events_queue()).await.expect("queue");
    assert_owned(&queue_tags, &stack.name, "sqs_queue.task_events");
    let queue_arn = queue_attrs["QueueArn"].clone();
    assert_eq!(queue_attrs["MessageRetentionPeriod"], "604800");
    for action in ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueUrl"] {
        let on: BTreeSet<&str> = grants
            .iter()
            .filter(|(a, _)| a == action)
            .map(|(_, r)| r.as_str())
            .collect();
        assert_eq!(on, BTreeSet::from([queue_arn.as_str()]), "{action}");
    }
    let (rule, targets, rule_tags) = event_rule(aws, &stack.events_rule())
        .await
        .expect("event rule");
    assert_owned(&rule_tags, &stack.name, "event_rule.task_events");
    assert_eq!(targets, std::slice::from_ref(&queue_arn));
    let pattern: serde_json::Value =
        serde_json::from_str(rule.event_pattern().expect("pattern")).expect("JSON pattern");
    assert_eq!(
        pattern,
        json!({"source": ["aws.ecs"], "detail-type": ["ECS Task State Change"],
               "detail": {"clusterArn": [ecs_cluster.cluster_arn().expect("cluster ARN")]}})
    );
    let queue_policy: serde_json::Value =
        serde_json::from_str(&queue_attrs["Policy"]).expect("queue policy");
    assert_eq!(
        queue_policy["Statement"][0]["Principal"],
        json!({"Service": "events.amazonaws.com"})
    );
    assert_eq!(
        queue_policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"],
        json!(rule.arn().expect("rule ARN"))
    );

    // The work pool, read back through Prefect's API: its template points at this stack.
    for w in &stack.workers {
        let pool = prefect()
            .pool(&w.work_pool)
            .expect("the work pool exists in Prefect");
        assert_eq!(pool["type"], "ecs", "{pool}");
        let d = |v: &str| default_of(&pool, v).clone();
        assert_eq!(d("cluster"), json!(ecs_cluster.cluster_arn().expect("ARN")));
        assert_eq!(d("vpc_id"), json!(vpc_id));
        let network = d("network_configuration");
        let subnets: BTreeSet<String> = network["subnets"]
            .as_array()
            .expect("subnets")
            .iter()
            .map(|s| s.as_str().expect("subnet id").to_owned())
            .collect();
        assert_eq!(subnets, private_ids, "pool subnets: {network}");
        assert_eq!(network["securityGroups"], json!([sg_id]));
        assert_eq!(network["assignPublicIp"], "DISABLED");
        assert_eq!(d("execution_role_arn"), json!(exec_arn));
        assert_eq!(d("task_role_arn"), json!(flow_arn));
        assert_eq!(d("launch_type"), "FARGATE");
        assert_eq!(d("configure_cloudwatch_logs"), true);
        assert_eq!(
            d("cloudwatch_logs_options")["awslogs-group"],
            json!(stack.log_group())
        );
        assert_eq!(d("cloudwatch_logs_options")["awslogs-region"], REGION);
        // Flow runs get the API key as a reference to the stack's secret.
        assert_eq!(d("prefect_api_key_secret_arn"), json!(secret_arn));
        // The rest is the server's own default template, untouched, plus prefect-aws 0.7's
        // two secret-ARN placeholders the served one predates.
        let mut served = prefect().ecs_template()["job_configuration"].clone();
        for var in [
            "prefect_api_key_secret_arn",
            "prefect_api_auth_string_secret_arn",
        ] {
            served[var] = json!(format!("{{{{ {var} }}}}"));
        }
        assert_eq!(
            pool["base_job_template"]["job_configuration"], served,
            "job_configuration"
        );
        assert!(
            pool["description"]
                .as_str()
                .is_some_and(|d| d.contains(&format!("\"prefect-ecs:stack\":\"{}\"", stack.name))),
            "ownership marker: {pool}"
        );
    }

    for w in &stack.workers {
        let registries = discovery_services_named(aws, &w.name).await;
        assert_eq!(registries.len(), 1, "{registries:?}");
        let registry_arn = registries[0].arn().expect("Cloud Map service ARN");
        let registry = aws
            .sd
            .get_service()
            .id(registries[0].id().expect("id"))
            .send()
            .await
            .expect("GetService");
        assert_eq!(
            registry.service().and_then(|s| s.namespace_id()),
            namespace.id(),
            "Cloud Map service namespace"
        );
        assert_owned(
            &discovery_tags(aws, registry_arn).await,
            &stack.name,
            &format!("service_discovery_service.{}", w.name),
        );

        let service = ecs_service(aws, &stack.cluster(), &w.name)
            .await
            .expect("ECS service");
        assert_eq!(service.status(), Some("ACTIVE"));
        assert_eq!(service.launch_type(), Some(&LaunchType::Fargate));
        assert_eq!(service.desired_count(), 1);
        let network = service
            .network_configuration()
            .and_then(|n| n.awsvpc_configuration())
            .expect("awsvpc configuration");
        let subnets: BTreeSet<String> = network.subnets().iter().cloned().collect();
        assert_eq!(subnets, private_ids, "service subnets");
        assert_eq!(network.security_groups(), [sg_id.to_owned()]);
        assert_eq!(network.assign_public_ip(), Some(&AssignPublicIp::Disabled));
        let registries: Vec<_> = service
            .service_registries()
            .iter()
            .map(|r| r.registry_arn())
            .collect();
        assert_eq!(registries, [Some(registry_arn)], "service registries");
        assert_owned(
            &ecs_tags(service.tags()),
            &stack.name,
            &format!("ecs_service.{}", w.name),
        );

        let (td, td_tags) =
            task_definition(aws, service.task_definition().expect("task definition")).await;
        assert_owned(
            &td_tags,
            &stack.name,
            &format!("ecs_task_definition.{}", w.name),
        );
        assert_eq!(td.family(), Some(w.name.as_str()));
        assert_eq!(td.cpu(), Some(w.cpu.to_string().as_str()));
        assert_eq!(td.memory(), Some(w.memory.to_string().as_str()));
        assert_eq!(td.network_mode(), Some(&NetworkMode::Awsvpc));
        assert_eq!(td.requires_compatibilities(), [Compatibility::Fargate]);
        assert_eq!(td.execution_role_arn(), Some(exec_arn.as_str()));
        assert_eq!(td.task_role_arn(), Some(task_arn.as_str()));
        let containers = td.container_definitions();
        assert_eq!(containers.len(), 1, "{containers:?}");
        let c = &containers[0];
        assert_eq!(c.name(), Some("worker"));
        assert_eq!(c.image(), Some(IMAGE));
        assert_eq!(
            c.command(),
            [
                "prefect",
                "worker",
                "start",
                "--pool",
                &w.work_pool,
                "--type",
                "ecs",
                "--name",
                &w.name,
                "--with-healthcheck"
            ]
            .map(String::from)
        );
        // The worker's /health endpoint, checked by ECS after the start period.
        let health = c.health_check().expect("a container health check");
        assert!(
            health.command().join(" ").contains("localhost:8080/health"),
            "{health:?}"
        );
        assert!(health.start_period().is_some_and(|p| p > 0), "{health:?}");
        assert_eq!(
            c.stop_timeout(),
            Some(prefect_ecs::graph::WORKER_STOP_TIMEOUT as i32)
        );
        let env: BTreeMap<&str, &str> = c
            .environment()
            .iter()
            .map(|kv| {
                (
                    kv.name().unwrap_or_default(),
                    kv.value().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            env.get("PREFECT_API_URL"),
            Some(&prefect().api_url.as_str())
        );
        // A plain Prefect image gets prefect-aws installed at start, or `--type ecs` fails.
        assert_eq!(env.get("EXTRA_PIP_PACKAGES"), Some(&"prefect-aws==0.7.12"));
        assert!(
            !env.contains_key("PREFECT_API_KEY") && !env.values().any(|v| *v == stack.canary()),
            "the API key is in the plain environment"
        );
        let secrets: Vec<(&str, &str)> = c
            .secrets()
            .iter()
            .map(|s| (s.name(), s.value_from()))
            .collect();
        assert_eq!(secrets, [("PREFECT_API_KEY", secret_arn)]);
        let logging = c.log_configuration().expect("log configuration");
        assert_eq!(logging.log_driver(), &LogDriver::Awslogs);
        let options = logging.options().cloned().unwrap_or_default();
        assert_eq!(
            options.get("awslogs-group").map(String::as_str),
            Some(stack.log_group().as_str())
        );
        assert_eq!(
            options.get("awslogs-region").map(String::as_str),
            Some(REGION)
        );
        assert!(
            options
                .get("awslogs-stream-prefix")
                .is_some_and(|p| !p.is_empty()),
            "{options:?}"
        );
    }
}

/// With a recovery window, destroy schedules the secret's deletion; a later apply restores it
/// (AWS would refuse to create the name again) and sets its value.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_in_its_recovery_window_is_restored_by_apply() {
    let aws = Aws::new().await;
    let mut stack = TestStack::new("restore");
    stack.extra = "[secret]\nrecovery_window_days = 7\n".into();
    stack.apply().assert_ok();
    stack.destroy().assert_ok();
    let scheduled = |aws: &Aws, name: String| {
        let secrets = aws.secrets.clone();
        async move {
            let d = secrets.describe_secret().secret_id(name).send().await;
            d.expect("the secret is kept during its recovery window")
                .deleted_date()
                .is_some()
        }
    };
    assert!(
        scheduled(&aws, stack.secret_name()).await,
        "destroy did not schedule the deletion"
    );

    // Nothing is left to destroy: a second destroy is a no-op, not an error.
    let out = stack.destroy().assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");

    let out = stack.plan().assert_ok();
    assert_eq!(
        plan::changes(&out.stdout).get("secret.api_key"),
        Some(&Action::Update),
        "{out}"
    );
    stack.apply().assert_ok();
    assert!(
        !scheduled(&aws, stack.secret_name()).await,
        "apply did not restore the secret"
    );
    assert!(secret_value(&aws, &stack.secret_name()).await == stack.canary());
    assert!(plan::is_converged(&stack.plan().assert_ok().stdout));

    stack.destroy().assert_ok();
    aws.secrets
        .delete_secret()
        .secret_id(stack.secret_name())
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("clean up the scheduled secret");
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
}
