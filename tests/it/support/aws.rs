//! Direct AWS SDK access to moto, independent of prefect-ecs' own AWS code: what a test
//! asserts about AWS it reads here, with nothing shared with the engine.

use std::collections::{BTreeMap, BTreeSet};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::config::Credentials;
use aws_sdk_ec2::types::{
    Address, Filter, InternetGateway, NatGateway, NatGatewayState, RouteTable, SecurityGroup,
    Subnet, Vpc, VpcEndpoint,
};
use serde_json::Value;

use super::{REGION, TestStack};

pub type Tags = BTreeMap<String, String>;

pub const STACK_TAG: &str = "prefect-ecs:stack";
pub const ADDRESS_TAG: &str = "prefect-ecs:address";

pub struct Aws {
    pub ec2: aws_sdk_ec2::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub iam: aws_sdk_iam::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub sd: aws_sdk_servicediscovery::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub kms: aws_sdk_kms::Client,
}

impl Aws {
    /// Clients for the shared moto server (started on first use).
    pub async fn new() -> Self {
        Self::for_endpoint(&super::moto().endpoint).await
    }

    pub async fn for_endpoint(endpoint: &str) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await;
        Aws {
            ec2: aws_sdk_ec2::Client::new(&config),
            ecs: aws_sdk_ecs::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            sd: aws_sdk_servicediscovery::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            events: aws_sdk_eventbridge::Client::new(&config),
            kms: aws_sdk_kms::Client::new(&config),
        }
    }
}

pub fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> Tags {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().into(),
                t.value().unwrap_or_default().into(),
            )
        })
        .collect()
}

pub fn ecs_tags(tags: &[aws_sdk_ecs::types::Tag]) -> Tags {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().into(),
                t.value().unwrap_or_default().into(),
            )
        })
        .collect()
}

/// Asserts the two ownership tags every resource of the stack carries.
#[track_caller]
pub fn assert_owned(tags: &Tags, stack: &str, address: &str) {
    assert_eq!(
        tags.get(STACK_TAG).map(String::as_str),
        Some(stack),
        "{address}: tag {STACK_TAG}; tags: {tags:?}"
    );
    assert_eq!(
        tags.get(ADDRESS_TAG).map(String::as_str),
        Some(address),
        "{address}: tag {ADDRESS_TAG}; tags: {tags:?}"
    );
}

/// The stack's EC2 resources, keyed by their `prefect-ecs:address` tag. Built from describe
/// calls filtered by the stack tag *and* re-filtered here, because moto ignores tag filters on
/// some calls (DescribeNatGateways).
#[derive(Debug, Default)]
pub struct Ec2Stack {
    pub vpcs: BTreeMap<String, Vpc>,
    pub subnets: BTreeMap<String, Subnet>,
    pub internet_gateways: BTreeMap<String, InternetGateway>,
    pub eips: BTreeMap<String, Address>,
    /// NAT gateways not in state `deleted` (AWS lists deleted ones for a while).
    pub nat_gateways: BTreeMap<String, NatGateway>,
    pub route_tables: BTreeMap<String, RouteTable>,
    pub security_groups: BTreeMap<String, SecurityGroup>,
    /// VPC endpoints not deleted or being deleted (AWS lists deleted ones for a while).
    pub vpc_endpoints: BTreeMap<String, VpcEndpoint>,
}

impl Ec2Stack {
    pub async fn load(aws: &Aws, stack: &str) -> Self {
        let filter = || {
            Filter::builder()
                .name(format!("tag:{STACK_TAG}"))
                .values(stack)
                .build()
        };
        let ec2 = &aws.ec2;
        let mut s = Ec2Stack::default();
        let out = ec2.describe_vpcs().filters(filter()).send().await;
        for v in out.expect("DescribeVpcs").vpcs() {
            keep(&mut s.vpcs, stack, v.tags(), v);
        }
        let out = ec2.describe_subnets().filters(filter()).send().await;
        for v in out.expect("DescribeSubnets").subnets() {
            keep(&mut s.subnets, stack, v.tags(), v);
        }
        let out = ec2
            .describe_internet_gateways()
            .filters(filter())
            .send()
            .await;
        for v in out.expect("DescribeInternetGateways").internet_gateways() {
            keep(&mut s.internet_gateways, stack, v.tags(), v);
        }
        let out = ec2.describe_addresses().filters(filter()).send().await;
        for v in out.expect("DescribeAddresses").addresses() {
            keep(&mut s.eips, stack, v.tags(), v);
        }
        let out = ec2.describe_nat_gateways().filter(filter()).send().await;
        for v in out.expect("DescribeNatGateways").nat_gateways() {
            if v.state() != Some(&NatGatewayState::Deleted) {
                keep(&mut s.nat_gateways, stack, v.tags(), v);
            }
        }
        let out = ec2.describe_route_tables().filters(filter()).send().await;
        for v in out.expect("DescribeRouteTables").route_tables() {
            keep(&mut s.route_tables, stack, v.tags(), v);
        }
        let out = ec2
            .describe_security_groups()
            .filters(filter())
            .send()
            .await;
        for v in out.expect("DescribeSecurityGroups").security_groups() {
            keep(&mut s.security_groups, stack, v.tags(), v);
        }
        let out = ec2.describe_vpc_endpoints().filters(filter()).send().await;
        for v in out.expect("DescribeVpcEndpoints").vpc_endpoints() {
            let state = v.state().map(|s| s.as_str().to_ascii_lowercase());
            if !matches!(state.as_deref(), Some("deleted" | "deleting")) {
                keep(&mut s.vpc_endpoints, stack, v.tags(), v);
            }
        }
        s
    }

    /// Every address found, for "nothing left" and "nothing extra" checks.
    pub fn addresses(&self) -> Vec<String> {
        let Ec2Stack {
            vpcs,
            subnets,
            internet_gateways,
            eips,
            nat_gateways,
            route_tables,
            security_groups,
            vpc_endpoints,
        } = self;
        vpcs.keys()
            .chain(subnets.keys())
            .chain(internet_gateways.keys())
            .chain(eips.keys())
            .chain(nat_gateways.keys())
            .chain(route_tables.keys())
            .chain(security_groups.keys())
            .chain(vpc_endpoints.keys())
            .cloned()
            .collect()
    }
}

#[track_caller]
fn keep<T: Clone + std::fmt::Debug>(
    into: &mut BTreeMap<String, T>,
    stack: &str,
    tags: &[aws_sdk_ec2::types::Tag],
    item: &T,
) {
    let tags = ec2_tags(tags);
    if tags.get(STACK_TAG).map(String::as_str) != Some(stack) {
        return;
    }
    let address = tags
        .get(ADDRESS_TAG)
        .cloned()
        .unwrap_or_else(|| panic!("resource tagged for {stack} without {ADDRESS_TAG}: {item:?}"));
    if let Some(other) = into.insert(address.clone(), item.clone()) {
        panic!("two resources claim {address}: {other:?} and {item:?}");
    }
}

/// The resource at `address`, with the addresses present in the failure message.
#[track_caller]
pub fn at<'a, T>(resources: &'a BTreeMap<String, T>, address: &str) -> &'a T {
    resources.get(address).unwrap_or_else(|| {
        panic!(
            "no {address} among {:?}",
            resources.keys().collect::<Vec<_>>()
        )
    })
}

/// An IAM policy document as IAM returns it (URL-encoded JSON), parsed.
pub fn policy_json(document: &str) -> Value {
    let decoded = percent_encoding::percent_decode_str(document)
        .decode_utf8()
        .expect("policy document is UTF-8 once decoded");
    serde_json::from_str(&decoded)
        .unwrap_or_else(|e| panic!("policy document is not JSON ({e}): {decoded}"))
}

/// A policy field that may be a string or an array of strings.
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().expect("a string in a policy list").to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

fn statements(policy: &Value) -> Vec<&Value> {
    match &policy["Statement"] {
        Value::Array(items) => items.iter().collect(),
        single @ Value::Object(_) => vec![single],
        other => panic!("policy without statements: {other}"),
    }
}

/// Every (action, resource) pair an identity policy allows.
pub fn allowed(policy: &Value) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    for st in statements(policy) {
        assert_ne!(
            st["Effect"], "Deny",
            "unexpected Deny statement in {policy}"
        );
        for action in strings(st.get("Action")) {
            for resource in strings(st.get("Resource")) {
                pairs.insert((action.clone(), resource));
            }
        }
    }
    pairs
}

/// True when a trust policy lets `service` assume the role.
pub fn trusts_service(policy: &Value, service: &str) -> bool {
    statements(policy).into_iter().any(|st| {
        st["Effect"] == "Allow"
            && strings(st.get("Action"))
                .iter()
                .any(|a| a == "sts:AssumeRole")
            && strings(st["Principal"].get("Service"))
                .iter()
                .any(|s| s == service)
    })
}

/// The ARN of the stack's role `name`, its trust policy and its tags.
pub async fn role(aws: &Aws, name: &str) -> (String, Value, Tags) {
    let out = aws.iam.get_role().role_name(name).send().await;
    let role = out
        .unwrap_or_else(|e| panic!("GetRole {name}: {e:?}"))
        .role
        .expect("role");
    let trust = policy_json(role.assume_role_policy_document().expect("trust policy"));
    let tags = aws.iam.list_role_tags().role_name(name).send().await;
    let tags = tags
        .expect("ListRoleTags")
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    (role.arn().to_owned(), trust, tags)
}

/// The role's inline policies, parsed.
pub async fn inline_policies(aws: &Aws, role: &str) -> Vec<Value> {
    let names = aws.iam.list_role_policies().role_name(role).send().await;
    let mut policies = Vec::new();
    for name in names.expect("ListRolePolicies").policy_names() {
        let out = aws
            .iam
            .get_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await;
        policies.push(policy_json(out.expect("GetRolePolicy").policy_document()));
    }
    policies
}

pub async fn attached_policies(aws: &Aws, role: &str) -> BTreeSet<String> {
    let out = aws
        .iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await;
    out.expect("ListAttachedRolePolicies")
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn().map(str::to_owned))
        .collect()
}

pub async fn secret_value(aws: &Aws, name: &str) -> String {
    let out = aws.secrets.get_secret_value().secret_id(name).send().await;
    out.expect("GetSecretValue")
        .secret_string()
        .expect("a string secret")
        .to_owned()
}

pub async fn secret_arn(aws: &Aws, name: &str) -> String {
    let out = aws.secrets.describe_secret().secret_id(name).send().await;
    out.expect("DescribeSecret")
        .arn()
        .expect("a secret has an ARN")
        .to_owned()
}

/// The SQS queue named `name`: (URL, its attributes, tags).
pub async fn queue(aws: &Aws, name: &str) -> Option<(String, BTreeMap<String, String>, Tags)> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let url = match aws.sqs.get_queue_url().queue_name(name).send().await {
        Ok(r) => r.queue_url()?.to_owned(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_queue_does_not_exist()) =>
        {
            return None;
        }
        Err(e) => panic!("GetQueueUrl {name}: {e:?}"),
    };
    let attributes = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_owned(), v))
        .collect();
    let tags = aws
        .sqs
        .list_queue_tags()
        .queue_url(&url)
        .send()
        .await
        .expect("ListQueueTags")
        .tags()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect();
    Some((url, attributes, tags))
}

/// The EventBridge rule named `name`: (the rule, its targets' ARNs, tags).
pub async fn event_rule(
    aws: &Aws,
    name: &str,
) -> Option<(
    aws_sdk_eventbridge::operation::describe_rule::DescribeRuleOutput,
    Vec<String>,
    Tags,
)> {
    let rule = match aws.events.describe_rule().name(name).send().await {
        Ok(r) => r,
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            return None;
        }
        Err(e) => panic!("DescribeRule {name}: {e:?}"),
    };
    let targets = aws
        .events
        .list_targets_by_rule()
        .rule(name)
        .send()
        .await
        .expect("ListTargetsByRule")
        .targets()
        .iter()
        .map(|t| t.arn().to_owned())
        .collect();
    let tags = aws
        .events
        .list_tags_for_resource()
        .resource_arn(rule.arn().unwrap_or_default())
        .send()
        .await
        .expect("ListTagsForResource")
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    Some((rule, targets, tags))
}

/// The log group named exactly `name`: (ARN without `:*`, retention days, tags).
pub async fn log_group(aws: &Aws, name: &str) -> Option<(String, Option<i32>, Tags)> {
    let out = aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(name)
        .send()
        .await;
    let out = out.expect("DescribeLogGroups");
    let group = out
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(name))?;
    let arn = group.arn().expect("log group ARN").trim_end_matches(":*");
    let tags = aws
        .logs
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await;
    let tags = tags
        .expect("logs ListTagsForResource")
        .tags()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect();
    Some((arn.to_owned(), group.retention_in_days(), tags))
}

/// Cloud Map namespaces named `name` (ListNamespaces filters are ignored by moto: filter here).
pub async fn namespaces_named(
    aws: &Aws,
    name: &str,
) -> Vec<aws_sdk_servicediscovery::types::NamespaceSummary> {
    let pages = aws.sd.list_namespaces().into_paginator().send();
    let pages: Result<Vec<_>, _> = pages.collect().await;
    pages
        .expect("ListNamespaces")
        .iter()
        .flat_map(|page| page.namespaces())
        .filter(|n| n.name() == Some(name))
        .cloned()
        .collect()
}

/// Cloud Map services named `name`, in any namespace.
pub async fn discovery_services_named(
    aws: &Aws,
    name: &str,
) -> Vec<aws_sdk_servicediscovery::types::ServiceSummary> {
    let pages = aws.sd.list_services().into_paginator().send();
    let pages: Result<Vec<_>, _> = pages.collect().await;
    pages
        .expect("ListServices")
        .iter()
        .flat_map(|page| page.services())
        .filter(|s| s.name() == Some(name))
        .cloned()
        .collect()
}

pub async fn discovery_tags(aws: &Aws, arn: &str) -> Tags {
    let out = aws
        .sd
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await;
    out.expect("servicediscovery ListTagsForResource")
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

/// The ECS service `name` in `cluster`, if the cluster exists and lists it (any status).
pub async fn ecs_service(
    aws: &Aws,
    cluster: &str,
    name: &str,
) -> Option<aws_sdk_ecs::types::Service> {
    let out = aws
        .ecs
        .describe_services()
        .cluster(cluster)
        .services(name)
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await;
    match out {
        Ok(out) => out
            .services()
            .iter()
            .find(|s| s.service_name() == Some(name))
            .cloned(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_cluster_not_found_exception()) =>
        {
            None
        }
        Err(e) => panic!("DescribeServices {cluster}/{name}: {e:?}"),
    }
}

/// A task definition (by ARN or family[:revision]) with its tags.
pub async fn task_definition(aws: &Aws, id: &str) -> (aws_sdk_ecs::types::TaskDefinition, Tags) {
    let out = aws
        .ecs
        .describe_task_definition()
        .task_definition(id)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeTaskDefinition {id}: {e:?}"));
    let tags = ecs_tags(out.tags());
    (out.task_definition.expect("task definition"), tags)
}

/// ARNs of the ACTIVE revisions of exactly `family` (the prefix filter also matches longer
/// family names).
pub async fn active_revisions(aws: &Aws, family: &str) -> Vec<String> {
    let out = aws
        .ecs
        .list_task_definitions()
        .family_prefix(family)
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await;
    out.expect("ListTaskDefinitions")
        .task_definition_arns()
        .iter()
        .filter(|arn| arn.contains(&format!(":task-definition/{family}:")))
        .cloned()
        .collect()
}

/// The cluster named `name` (any status) with its tags.
pub async fn cluster(aws: &Aws, name: &str) -> Option<(aws_sdk_ecs::types::Cluster, Tags)> {
    let out = aws
        .ecs
        .describe_clusters()
        .clusters(name)
        .include(aws_sdk_ecs::types::ClusterField::Tags)
        .send()
        .await;
    let out = out.expect("DescribeClusters");
    let cluster = out
        .clusters()
        .iter()
        .find(|c| c.cluster_name() == Some(name))?;
    Some((cluster.clone(), ecs_tags(cluster.tags())))
}

/// Everything of the stack still present in AWS, one line each, queried service by service
/// (the tagging API misses EIPs, IAM and Cloud Map). Lines start with the resource kind.
pub async fn leftovers(aws: &Aws, stack: &TestStack) -> Vec<String> {
    let workers: Vec<Named> = stack
        .workers
        .iter()
        .map(|w| Named {
            worker: w.name.clone(),
            pool: w.work_pool.clone(),
            family: w.name.clone(),
        })
        .collect();
    leftovers_of(aws, &stack.name, &workers).await
}

/// A worker's names, for [`leftovers_of`].
pub struct Named {
    pub worker: String,
    pub pool: String,
    pub family: String,
}

/// [`leftovers`] of the stack `name` (an environment's: `<stack>-<env>`), every other name
/// derived from it as the spec's defaults are.
pub async fn leftovers_of(aws: &Aws, name: &str, workers: &[Named]) -> Vec<String> {
    let names = TestStack::named(name);
    let stack = &names;
    let mut left: Vec<String> = Ec2Stack::load(aws, &stack.name)
        .await
        .addresses()
        .into_iter()
        .map(|a| format!("ec2 {a}"))
        .collect();

    for w in workers {
        let pool = super::prefect::prefect().pool(&w.pool);
        if pool.is_some_and(|p| {
            // An adopted pool outlives the stack by design.
            p["description"].as_str().is_some_and(|d| {
                d.contains(&format!("\"prefect-ecs:stack\":\"{}\"", stack.name))
                    && !d.contains("\"prefect-ecs:adopted\":\"true\"")
            })
        }) {
            left.push(format!("prefect_work_pool {}", w.pool));
        }
    }

    for role in [
        stack.execution_role(),
        stack.task_role(),
        stack.flow_run_role(),
    ] {
        match aws.iam.get_role().role_name(&role).send().await {
            Ok(_) => left.push(format!("iam_role {role}")),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) => {}
            Err(e) => panic!("GetRole {role}: {e:?}"),
        }
    }

    let secret = stack.secret_name();
    match aws
        .secrets
        .describe_secret()
        .secret_id(&secret)
        .send()
        .await
    {
        Ok(s) if s.deleted_date().is_some() => {}
        Ok(_) => left.push(format!("secret {secret}")),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) => {}
        Err(e) => panic!("DescribeSecret {secret}: {e:?}"),
    }

    for ns in namespaces_named(aws, &stack.namespace()).await {
        left.push(format!("service_discovery_namespace {ns:?}"));
    }
    if log_group(aws, &stack.log_group()).await.is_some() {
        left.push(format!("log_group {}", stack.log_group()));
    }
    if queue(aws, &stack.events_queue()).await.is_some() {
        left.push(format!("sqs_queue {}", stack.events_queue()));
    }
    if event_rule(aws, &stack.events_rule()).await.is_some() {
        left.push(format!("event_rule {}", stack.events_rule()));
    }

    for w in workers {
        for s in discovery_services_named(aws, &w.worker).await {
            // Another stack's (an environment's beside this one) service of the same name is not this one's.
            let tags = discovery_tags(aws, s.arn().unwrap_or_default()).await;
            if tags.get("prefect-ecs:stack").is_none_or(|t| t == name) {
                left.push(format!("service_discovery_service {s:?}"));
            }
        }
        if let Some(s) = ecs_service(aws, &stack.cluster(), &w.worker).await
            && s.status() != Some("INACTIVE")
        {
            left.push(format!("ecs_service {} {:?}", w.worker, s.status()));
        }
        for arn in active_revisions(aws, &w.family).await {
            left.push(format!("ecs_task_definition {arn}"));
        }
    }

    if let Some((c, _)) = cluster(aws, &stack.cluster()).await
        && c.status() != Some("INACTIVE")
    {
        left.push(format!("ecs_cluster {} {:?}", stack.cluster(), c.status()));
    }
    left
}

/// Writes `lines` to a new stream of `group`, timestamped now, as a container would.
pub async fn put_log_lines(aws: &Aws, group: &str, stream: &str, lines: &[&str]) {
    aws.logs
        .create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
        .expect("CreateLogStream");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let events = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now + i as i64)
                .message(*l)
                .build()
                .expect("event")
        })
        .collect();
    aws.logs
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .set_log_events(Some(events))
        .send()
        .await
        .expect("PutLogEvents");
}
