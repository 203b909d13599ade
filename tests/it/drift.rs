//! Out-of-band changes made with the SDK are reported by `plan` and undone by `apply`.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{IpPermission, IpRange, Tag};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;

use crate::support::aws::{
    Aws, Ec2Stack, at, attached_policies, ec2_tags, ecs_service, event_rule, leftovers, log_group,
    queue, secret_value,
};
use crate::support::plan;
use crate::support::{EXECUTION_MANAGED_POLICY, TestStack, canary};

#[tokio::test(flavor = "multi_thread")]
async fn drift_is_detected_and_repaired() {
    let aws = Aws::new().await;
    let mut stack = TestStack::new("drift");
    let worker = stack.worker(0).to_owned();
    stack.apply().assert_ok();

    let ec2 = Ec2Stack::load(&aws, &stack.name).await;
    let private_rt = at(&ec2.route_tables, "route_table.private[0]")
        .route_table_id()
        .expect("route table id")
        .to_owned();
    let nat_id = at(&ec2.nat_gateways, "nat_gateway.nat[0]")
        .nat_gateway_id()
        .expect("NAT id")
        .to_owned();
    let sg_id = at(&ec2.security_groups, "security_group.worker")
        .group_id()
        .expect("SG id")
        .to_owned();
    let subnet = at(&ec2.subnets, "subnet.public[0]");
    let subnet_id = subnet.subnet_id().expect("subnet id").to_owned();
    let subnet_name = ec2_tags(subnet.tags())
        .remove("Name")
        .expect("subnet Name tag");
    let desired = ecs_service(&aws, &stack.cluster(), &worker)
        .await
        .expect("service")
        .desired_count();

    aws.ec2
        .delete_route()
        .route_table_id(&private_rt)
        .destination_cidr_block("0.0.0.0/0")
        .send()
        .await
        .expect("DeleteRoute");
    aws.ecs
        .update_service()
        .cluster(stack.cluster())
        .service(&worker)
        .desired_count(3)
        .send()
        .await
        .expect("UpdateService");
    aws.logs
        .put_retention_policy()
        .log_group_name(stack.log_group())
        .retention_in_days(7)
        .send()
        .await
        .expect("PutRetentionPolicy");
    aws.iam
        .detach_role_policy()
        .role_name(stack.execution_role())
        .policy_arn(EXECUTION_MANAGED_POLICY)
        .send()
        .await
        .expect("DetachRolePolicy");
    let foreign_value = canary();
    stack.forbid(&foreign_value);
    aws.secrets
        .put_secret_value()
        .secret_id(stack.secret_name())
        .secret_string(&foreign_value)
        .send()
        .await
        .expect("PutSecretValue");
    aws.ec2
        .authorize_security_group_ingress()
        .group_id(&sg_id)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .expect("AuthorizeSecurityGroupIngress");
    aws.ec2
        .delete_tags()
        .resources(&subnet_id)
        .tags(Tag::builder().key("Name").build())
        .send()
        .await
        .expect("DeleteTags");
    let (queue_url, _, _) = queue(&aws, &stack.events_queue()).await.expect("queue");
    aws.sqs
        .set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(QueueAttributeName::MessageRetentionPeriod, "60")
        .attributes(
            QueueAttributeName::Policy,
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": "*", "Action": "sqs:SendMessage", "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await
        .expect("SetQueueAttributes");
    aws.events
        .disable_rule()
        .name(stack.events_rule())
        .send()
        .await
        .expect("DisableRule");

    // Neither secret value may show (the run helper fails on both), and exactly the drifted
    // resources are reported.
    let out = stack.plan().assert_ok();
    let drifted: BTreeSet<String> = [
        "route_table.private[0]".to_owned(),
        format!("ecs_service.{worker}"),
        "log_group.workers".to_owned(),
        "iam_role.execution".to_owned(),
        "secret.api_key".to_owned(),
        "security_group.worker".to_owned(),
        "subnet.public[0]".to_owned(),
        "sqs_queue.task_events".to_owned(),
        "sqs_queue_policy.task_events".to_owned(),
        "event_rule.task_events".to_owned(),
    ]
    .into();
    let reported: BTreeSet<String> = plan::changes(&out.stdout).into_keys().collect();
    assert_eq!(reported, drifted, "{out}");
    // Applied from this very spec, so each difference is called drift: but the secret's,
    // whose source may have been rotated on purpose, and the queue policy's, which carries no
    // tags (SQS has none for it) to say which spec it was applied from.
    let unattributed = ["secret.api_key", "sqs_queue_policy.task_events"];
    for address in drifted
        .iter()
        .filter(|a| !unattributed.contains(&a.as_str()))
    {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.contains(&format!(" {address}  # changed outside prefect-ecs"))),
            "{address} not reported as drift:\n{out}"
        );
    }

    stack.apply().assert_ok();

    let ec2 = Ec2Stack::load(&aws, &stack.name).await;
    let routes = at(&ec2.route_tables, "route_table.private[0]").routes();
    assert!(
        routes
            .iter()
            .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0")
                && r.nat_gateway_id() == Some(nat_id.as_str())),
        "private default route not restored: {routes:?}"
    );
    let service = ecs_service(&aws, &stack.cluster(), &worker)
        .await
        .expect("service");
    assert_eq!(service.desired_count(), desired);
    let (_, retention, _) = log_group(&aws, &stack.log_group())
        .await
        .expect("log group");
    assert_eq!(retention, Some(30));
    let attached = attached_policies(&aws, &stack.execution_role()).await;
    assert!(attached.contains(EXECUTION_MANAGED_POLICY), "{attached:?}");
    assert!(
        secret_value(&aws, &stack.secret_name()).await == stack.canary(),
        "the secret was not set back to PREFECT_API_KEY"
    );
    let sg = at(&ec2.security_groups, "security_group.worker");
    assert!(sg.ip_permissions().is_empty(), "ingress kept: {sg:?}");
    assert_eq!(
        ec2_tags(at(&ec2.subnets, "subnet.public[0]").tags()).get("Name"),
        Some(&subnet_name)
    );
    let (_, queue_attrs, _) = queue(&aws, &stack.events_queue()).await.expect("queue");
    assert_eq!(queue_attrs["MessageRetentionPeriod"], "604800");
    let policy: serde_json::Value =
        serde_json::from_str(&queue_attrs["Policy"]).expect("queue policy");
    assert_eq!(
        policy["Statement"][0]["Principal"],
        json!({"Service": "events.amazonaws.com"}),
        "the queue policy was not set back: {policy}"
    );
    let (rule, _, _) = event_rule(&aws, &stack.events_rule()).await.expect("rule");
    assert_eq!(rule.state().map(|s| s.as_str()), Some("ENABLED"));

    let out = stack.plan().assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");

    stack.destroy().assert_ok();
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
}

/// Issue 13: `[iam] path` and `permissions_boundary` on every role prefect-ecs creates; a
/// boundary taken off by hand is drift, put back in place (the role is not replaced).
#[tokio::test(flavor = "multi_thread")]
async fn roles_carry_the_path_and_the_boundary_and_a_removed_boundary_is_put_back() {
    const BOUNDARY: &str = "arn:aws:iam::aws:policy/PowerUserAccess";
    let aws = Aws::new().await;
    let mut stack = TestStack::new("boundary");
    stack.extra = format!("[iam]\npath = \"/prefect/\"\npermissions_boundary = \"{BOUNDARY}\"\n");
    stack.apply().assert_ok();
    let roles = [
        stack.execution_role(),
        stack.task_role(),
        stack.flow_run_role(),
    ];
    let mut arns = Vec::new();
    for name in &roles {
        let role = role(&aws, name).await;
        assert_eq!(role.path(), "/prefect/", "{name}");
        assert!(role.arn().contains(":role/prefect/"), "{}", role.arn());
        assert_eq!(boundary(&role), Some(BOUNDARY), "{name}");
        arns.push(role.arn().to_owned());
    }
    let out = stack.plan().assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");

    aws.iam
        .delete_role_permissions_boundary()
        .role_name(stack.task_role())
        .send()
        .await
        .expect("DeleteRolePermissionsBoundary");
    plans_only_an_update_of(&stack, "iam_role.task", "permissions_boundary");
    stack.apply().assert_ok();
    let task = role(&aws, &stack.task_role()).await;
    assert_eq!(task.arn(), arns[1], "updated in place");
    assert_eq!(boundary(&task), Some(BOUNDARY));
    let out = stack.plan().assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");
    stack.destroy().assert_ok();
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
}

/// Issue 13: `[secret] kms_key_id` encrypts the secret with the customer's key, gives the
/// execution role `kms:Decrypt` on that key through Secrets Manager only, and `verify` says so;
/// the key changed by hand is drift, put back.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_under_a_customer_key_is_readable_through_secrets_manager_only() {
    let aws = Aws::new().await;
    let key_arn = |out: aws_sdk_kms::operation::create_key::CreateKeyOutput| {
        out.key_metadata()
            .expect("key")
            .arn()
            .expect("key ARN")
            .to_owned()
    };
    let key = key_arn(aws.kms.create_key().send().await.expect("CreateKey"));
    let other = key_arn(aws.kms.create_key().send().await.expect("CreateKey"));
    let mut stack = TestStack::new("kms");
    stack.extra = format!("[secret]\nkms_key_id = \"{key}\"\n");
    stack.apply().assert_ok();

    assert_eq!(
        secret_key(&aws, &stack).await.as_deref(),
        Some(key.as_str())
    );
    assert_eq!(
        secret_value(&aws, &stack.secret_name()).await,
        stack.canary()
    );
    let out = aws
        .iam
        .get_role_policy()
        .role_name(stack.execution_role())
        .policy_name("read-prefect-api-key")
        .send()
        .await
        .expect("GetRolePolicy");
    let document = crate::support::aws::policy_json(out.policy_document());
    let kms: Vec<&serde_json::Value> = document["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .filter(|s| s["Action"] == json!(["kms:Decrypt"]))
        .collect();
    assert_eq!(kms.len(), 1, "{document}");
    assert_eq!(kms[0]["Resource"], json!([key]));
    assert_eq!(
        kms[0]["Condition"],
        json!({"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}})
    );
    let out = stack.run(&["verify"], &[]).assert_ok();
    assert!(
        out.stdout.contains("the execution role reads the secret"),
        "{out}"
    );
    let out = stack.plan().assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");

    aws.secrets
        .update_secret()
        .secret_id(stack.secret_name())
        .kms_key_id(&other)
        .send()
        .await
        .expect("UpdateSecret");
    plans_only_an_update_of(&stack, "secret.api_key", "kms_key_id");
    stack.apply().assert_ok();
    assert_eq!(
        secret_key(&aws, &stack).await.as_deref(),
        Some(key.as_str())
    );
    let out = stack.plan().assert_ok();
    assert!(plan::is_converged(&out.stdout), "{out}");
    stack.destroy().assert_ok();
    assert_eq!(leftovers(&aws, &stack).await, Vec::<String>::new());
}

/// The KMS key the stack's secret is encrypted with, as Secrets Manager reports it.
async fn secret_key(aws: &Aws, stack: &TestStack) -> Option<String> {
    let d = aws
        .secrets
        .describe_secret()
        .secret_id(stack.secret_name())
        .send()
        .await
        .expect("DescribeSecret");
    d.kms_key_id().map(str::to_owned)
}

/// `plan --detailed-exitcode` shows one change: `address` updated in place, naming `attr`.
#[track_caller]
fn plans_only_an_update_of(stack: &TestStack, address: &str, attr: &str) {
    let out = stack
        .run(&["plan", "--detailed-exitcode"], &[])
        .assert_code(2);
    assert_eq!(
        plan::changes(&out.stdout).into_iter().collect::<Vec<_>>(),
        [(address.to_owned(), plan::Action::Update)],
        "{out}"
    );
    assert!(out.stdout.contains(attr), "{out}");
}

/// The role named `name`, as IAM describes it.
async fn role(aws: &Aws, name: &str) -> aws_sdk_iam::types::Role {
    let out = aws.iam.get_role().role_name(name).send().await;
    out.expect("GetRole").role().expect("role").clone()
}

/// A role's permissions boundary, by its policy's ARN.
fn boundary(role: &aws_sdk_iam::types::Role) -> Option<&str> {
    role.permissions_boundary()
        .and_then(|b| b.permissions_boundary_arn())
}
