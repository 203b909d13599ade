//! Spec → the desired resources and their dependency graph. Pure: the edges here are the
//! orderings AWS itself needs (each one named in a comment where it is not a plain reference).

use std::collections::BTreeMap;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::{Value, json};

use crate::kinds::{
    self, cloud_map_service, ecs_cluster, ecs_service, eip, event_rule, iam_role, iam_role_policy,
    internet_gateway, log_group, namespace, nat_gateway, route_table, secret, security_group,
    sqs_queue, sqs_queue_policy, subnet, task_definition, vpc, vpc_endpoint, work_pool,
};
use crate::model::{
    Address, Attrs, Desired, Kind, TAG_ADOPTED, TAG_SPEC, ownership_tags, reference,
};
use crate::secret::SecretValue;
use crate::spec::{Arch, CredentialKind, NatMode, Spec, Tier, WorkPool, Worker};

pub const EXECUTION_POLICY_ARN: &str =
    "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy";
const CONTAINER_NAME: &str = "worker";
const HEALTH_PORT: u16 = 8080;
/// The log group's output naming all its streams, `<group arn>:log-stream:*`.
pub const LOG_STREAMS_ARN: &str = "log_streams_arn";
/// How long ECS lets a worker stop after SIGTERM before it kills it. The real prefect-aws
/// worker exits 1-3 s after SIGTERM, 9 s when its Prefect server is gone (measured,
/// tests/it/real_worker.rs): 30 s is three times the worst seen, and a redeploy never waits
/// the two minutes Fargate allows at most.
pub const WORKER_STOP_TIMEOUT: u32 = 30;

/// What the worker's task role may do, scoped to this stack wherever AWS can scope it: run,
/// stop and watch tasks in the stack's cluster only (`ecs:cluster`), tag only what those
/// calls create (`ecs:CreateAction`), read flow-run logs of the stack's log group only, and
/// pass exactly the roles flow-run tasks use, to ECS tasks only (`iam:PassRole` on `*` would
/// let a worker escalate to any role). Task-definition calls and the two EC2 reads the worker
/// checks its network with have no resource-level permissions in AWS: `*` is all there is.
/// The calls are those the real prefect-aws worker makes (tests/it/real_worker.rs).
pub fn worker_permissions(
    pass_roles: Vec<Value>,
    cluster_arn: Value,
    log_streams: Value,
    events_queue_arn: Value,
) -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {
            "Effect": "Allow",
            "Action": ["ecs:DescribeTasks", "ecs:RunTask", "ecs:StopTask"],
            "Resource": ["*"],
            "Condition": {"ArnEquals": {"ecs:cluster": cluster_arn}},
        },
        {
            "Effect": "Allow",
            "Action": [
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcs",
                "ecs:DeregisterTaskDefinition",
                "ecs:DescribeTaskDefinition",
                "ecs:ListTaskDefinitions",
                "ecs:RegisterTaskDefinition",
            ],
            "Resource": ["*"],
        },
        {
            "Effect": "Allow",
            "Action": ["ecs:TagResource"],
            "Resource": ["*"],
            "Condition": {"StringEquals": {"ecs:CreateAction": ["RegisterTaskDefinition", "RunTask"]}},
        },
        {
            "Effect": "Allow",
            "Action": ["logs:GetLogEvents"],
            "Resource": [log_streams],
        },
        {
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": pass_roles,
            "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        },
        {
            // The observer: the cluster's task state changes, from the stack's queue only.
            "Effect": "Allow",
            "Action": [
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:ReceiveMessage",
            ],
            "Resource": [events_queue_arn],
        },
    ]})
}

/// The desired resources of a stack, in a graph whose edges point from a dependency to its
/// dependent.
#[derive(Debug)]
pub struct StackGraph {
    pub graph: DiGraph<Desired, ()>,
    index: BTreeMap<Address, NodeIndex>,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum GraphError {
    #[error("dependency cycle between {}", .0.join(", "))]
    Cycle(Vec<String>),
    #[error("{from} depends on {to}, which is not part of the stack")]
    Dangling { from: String, to: String },
}

impl StackGraph {
    pub fn from_resources(resources: Vec<Desired>) -> Result<StackGraph, GraphError> {
        let mut graph = DiGraph::new();
        let mut index = BTreeMap::new();
        for r in resources {
            let a = r.address.clone();
            index.insert(a, graph.add_node(r));
        }
        for (addr, &node) in &index {
            for dep in graph[node].deps() {
                let &from = index.get(&dep).ok_or_else(|| GraphError::Dangling {
                    from: addr.to_string(),
                    to: dep.to_string(),
                })?;
                graph.add_edge(from, node, ());
            }
        }
        let g = StackGraph { graph, index };
        g.order()?;
        Ok(g)
    }

    pub fn get(&self, a: &Address) -> Option<&Desired> {
        self.index.get(a).map(|&i| &self.graph[i])
    }

    pub fn resources(&self) -> impl Iterator<Item = &Desired> {
        self.graph.node_weights()
    }

    /// Creation order: every resource after all it depends on; ties broken by address so the
    /// order (and every rendering of it) is stable.
    pub fn order(&self) -> Result<Vec<Address>, GraphError> {
        if toposort(&self.graph, None).is_err() {
            let mut cycle: Vec<String> = tarjan_scc(&self.graph)
                .into_iter()
                .find(|scc| scc.len() > 1)
                .unwrap_or_default()
                .into_iter()
                .map(|i| self.graph[i].address.to_string())
                .collect();
            cycle.sort();
            return Err(GraphError::Cycle(cycle));
        }
        // Kahn's algorithm with a sorted ready set: deterministic, unlike petgraph's DFS order.
        let mut indegree: BTreeMap<NodeIndex, usize> = self
            .graph
            .node_indices()
            .map(|n| {
                (
                    n,
                    self.graph.neighbors_directed(n, petgraph::Incoming).count(),
                )
            })
            .collect();
        let mut ready: std::collections::BTreeSet<(Address, NodeIndex)> = indegree
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(n, _)| (self.graph[*n].address.clone(), *n))
            .collect();
        let mut out = Vec::new();
        while let Some((a, n)) = ready.pop_first() {
            out.push(a);
            for m in self.graph.neighbors(n) {
                let d = indegree.get_mut(&m).expect("every node has an indegree");
                *d -= 1;
                if *d == 0 {
                    ready.insert((self.graph[m].address.clone(), m));
                }
            }
        }
        Ok(out)
    }

    /// Nodes in creation order, each with what it depends on (`graph --format json`).
    pub fn to_json(&self) -> Value {
        let nodes: Vec<Value> = self
            .order()
            .unwrap_or_default()
            .iter()
            .filter_map(|a| self.get(a))
            .map(|d| {
                json!({
                    "address": d.address.to_string(),
                    "kind": d.address.kind.as_str(),
                    "name": d.address.name,
                    "depends_on": d.deps().iter().map(Address::to_string).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({ "format_version": crate::render::FORMAT_VERSION, "nodes": nodes })
    }

    /// Graphviz DOT, nodes in creation order.
    pub fn to_dot(&self) -> String {
        let mut s = String::from(
            "digraph stack {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
        );
        for a in self.order().unwrap_or_default() {
            s.push_str(&format!("  \"{a}\";\n"));
        }
        let mut edges: Vec<(String, String)> = self
            .graph
            .edge_indices()
            .filter_map(|e| self.graph.edge_endpoints(e))
            .map(|(f, t)| {
                (
                    self.graph[f].address.to_string(),
                    self.graph[t].address.to_string(),
                )
            })
            .collect();
        edges.sort();
        for (f, t) in edges {
            s.push_str(&format!("  \"{f}\" -> \"{t}\";\n"));
        }
        s.push_str("}\n");
        s
    }
}

/// Expand a validated spec into its desired resources. `credential` is the secret's value
/// (`None` when it is not needed, as for `graph`); `pool_template` is the Prefect server's
/// default base job template for `ecs` work pools, which the pools are filled from (`None`:
/// an empty one, for commands that only show the graph's shape).
pub fn build(
    spec: &Spec,
    region: &str,
    credential: Option<SecretValue>,
    pool_template: Option<&Value>,
) -> Result<StackGraph, GraphError> {
    let empty = json!({"job_configuration": {}, "variables": {"type": "object", "properties": {}}});
    let expander = Expander {
        spec,
        region,
        pool_template: pool_template.unwrap_or(&empty),
    };
    StackGraph::from_resources(expander.resources(credential))
}

struct Expander<'a> {
    spec: &'a Spec,
    region: &'a str,
    pool_template: &'a Value,
}

/// The prefect-aws a plain Prefect image installs at start: the release whose ECS job
/// template the work pool's secret-ARN variables follow (it requires Prefect ≥ 3.8).
pub const PREFECT_AWS: &str = "prefect-aws==0.7.12";

/// The oldest Prefect that [`PREFECT_AWS`] runs on.
pub const PREFECT_AWS_NEEDS: (u32, u32) = (3, 8);

/// Why a Prefect image is too old for the prefect-aws the pool's template is made for, when its
/// tag alone says so (`prefecthq/prefect:2-latest`, `…:3.1.4-python3.12`): the version it names.
/// `None` for a recent enough, unversioned (`latest`) or non-Prefect image.
pub fn prefect_too_old(image: &str) -> Option<String> {
    let (major, minor) = crate::image::ImageRef::parse(image)
        .ok()?
        .prefect_version()?;
    let (need_major, need_minor) = PREFECT_AWS_NEEDS;
    let old = major < need_major || (major == need_major && minor.is_some_and(|m| m < need_minor));
    old.then(|| match minor {
        Some(m) => format!("{major}.{m}"),
        None => major.to_string(),
    })
}

/// The images Prefect publishes without prefect-aws: an `ecs` worker in them needs
/// `EXTRA_PIP_PACKAGES=prefect-aws`, which their entrypoint installs at start.
fn is_plain_prefect_image(image: &str) -> bool {
    crate::image::ImageRef::parse(image).is_ok_and(|r| r.is_plain_prefect())
}

/// The prefect-aws requirement the user's `EXTRA_PIP_PACKAGES` pins, if any
/// (`prefect-aws==0.4.19`, `prefect[aws]`).
pub fn pinned_prefect_aws(extra_pip_packages: &str) -> Option<&str> {
    extra_pip_packages
        .split_whitespace()
        .find(|p| p.starts_with("prefect-aws") || p.starts_with("prefect[aws"))
}

/// The worker's `EXTRA_PIP_PACKAGES`: the user's, plus prefect-aws for a plain Prefect image.
fn extra_pip_packages(image: &str, user: Option<&String>) -> Option<String> {
    let mut packages: Vec<&str> = user
        .map(|u| u.split_whitespace().collect())
        .unwrap_or_default();
    let has_aws = user.is_some_and(|u| pinned_prefect_aws(u).is_some());
    if is_plain_prefect_image(image) && !has_aws {
        packages.push(PREFECT_AWS);
    }
    (!packages.is_empty()).then(|| packages.join(" "))
}

/// A security group's description is fixed at creation in EC2 and says nothing that matters:
/// set then, never diffed (a group made by hand with its own keeps it when adopted).
fn described_once(mut group: Desired) -> Desired {
    group
        .ignore_changes
        .push(security_group::DESCRIPTION.into());
    group
}

fn addr(kind: Kind, name: &str) -> Address {
    Address::new(kind, name)
}

fn idx(kind: Kind, name: &str, i: usize) -> Address {
    Address::indexed(kind, name, i)
}

impl Expander<'_> {
    fn res(&self, address: Address, mut attrs: Attrs, ec2_name: Option<String>) -> Desired {
        let mut tags = ownership_tags(&self.spec.name, &address, &self.spec.tags);
        if let Some(n) = ec2_name {
            tags["Name"] = json!(n);
        }
        attrs.insert(kinds::TAGS.into(), tags);
        let digest = spec_digest(address.kind, &attrs);
        attrs.get_mut(kinds::TAGS).expect("just inserted")[TAG_SPEC] = json!(digest);
        Desired::new(address, attrs)
    }

    /// The execution role reads the secret, and with a customer key decrypts it, through
    /// Secrets Manager only (`kms:ViaService`): the role cannot use the key for anything else.
    /// The cluster's ARN: an existing one's as given, else the stack's own cluster's.
    fn cluster_arn(&self) -> Value {
        match &self.spec.cluster.arn {
            Some(arn) => json!(arn),
            None => reference(&addr(Kind::EcsCluster, "main"), "arn"),
        }
    }

    /// The secret's ARN: an existing one's as given, else the stack's own secret's.
    fn secret_arn(&self) -> Value {
        match &self.spec.secret.arn {
            Some(arn) => json!(arn),
            None => reference(&addr(Kind::Secret, "api_key"), "arn"),
        }
    }

    fn execution_policy(&self) -> Value {
        let mut doc = policy(vec![(
            vec!["secretsmanager:GetSecretValue"],
            vec![self.secret_arn()],
        )]);
        if let (Some(key), Some(statements)) = (
            &self.spec.secret.kms_key_id,
            doc["Statement"].as_array_mut(),
        ) {
            statements.push(json!({
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": [key],
                "Condition": {"StringEquals": {
                    "kms:ViaService": format!("secretsmanager.{}.amazonaws.com", self.region),
                }},
            }));
        }
        doc
    }

    /// The VPC prefect-ecs makes: subnets, gateways, route tables. With the number of private
    /// route tables.
    fn network(&self) -> (Vec<Desired>, usize) {
        let s = self.spec;
        let net = &s.network;
        let vpc = addr(Kind::Vpc, "main");
        let igw = addr(Kind::InternetGateway, "main");
        let mut out = Vec::new();
        out.push(self.res(
            vpc.clone(),
            attrs([
                (vpc::CIDR_BLOCK, json!(net.cidr.to_string())),
                (vpc::ENABLE_DNS_SUPPORT, json!(true)),
                (vpc::ENABLE_DNS_HOSTNAMES, json!(true)),
            ]),
            Some(net.vpc_name.clone()),
        ));
        out.push(self.res(
            igw.clone(),
            attrs([(internet_gateway::VPC_ID, reference(&vpc, "id"))]),
            Some(format!("{}-igw", s.name)),
        ));
        for (i, z) in net.zones.iter().enumerate() {
            for (tier, cidr, public) in [
                ("public", z.public_cidr, true),
                ("private", z.private_cidr, false),
            ] {
                out.push(self.res(
                    idx(Kind::Subnet, tier, i),
                    attrs([
                        (subnet::VPC_ID, reference(&vpc, "id")),
                        (subnet::CIDR_BLOCK, json!(cidr.to_string())),
                        (subnet::AVAILABILITY_ZONE, json!(z.az)),
                        (subnet::MAP_PUBLIC_IP_ON_LAUNCH, json!(public)),
                    ]),
                    Some(format!("{}-{tier}-{}", s.name, z.az)),
                ));
            }
        }
        let nats = self.spec.network.nat_count();
        for i in 0..nats {
            let eip = idx(Kind::Eip, "nat", i);
            out.push(self.res(
                eip.clone(),
                attrs([(eip::DOMAIN, json!("vpc"))]),
                Some(format!("{}-nat-{i}", s.name)),
            ));
            let mut nat = self.res(
                idx(Kind::NatGateway, "nat", i),
                attrs([
                    (
                        nat_gateway::SUBNET_ID,
                        reference(&idx(Kind::Subnet, "public", i), "id"),
                    ),
                    (nat_gateway::ALLOCATION_ID, reference(&eip, "id")),
                    (nat_gateway::CONNECTIVITY_TYPE, json!("public")),
                ]),
                Some(format!("{}-nat-{i}", s.name)),
            );
            // AWS fails a NAT gateway in a VPC without an attached IGW (Gateway.NotAttached).
            nat.extra_deps.push(igw.clone());
            out.push(nat);
        }
        let public_subnets: Vec<Value> = (0..net.zones.len())
            .map(|i| reference(&idx(Kind::Subnet, "public", i), "id"))
            .collect();
        out.push(self.res(
            addr(Kind::RouteTable, "public"),
            attrs([
                (route_table::VPC_ID, reference(&vpc, "id")),
                (
                    route_table::ROUTES,
                    json!([{"destination": "0.0.0.0/0", "target": reference(&igw, "id")}]),
                ),
                (
                    route_table::SUBNET_IDS,
                    Value::Array(public_subnets.clone()),
                ),
            ]),
            Some(format!("{}-public", s.name)),
        ));
        // One private route table per NAT; with no NAT, one without a default route.
        let tables = net.private_tables();
        for t in 0..tables {
            let routes = if nats == 0 {
                json!([])
            } else {
                json!([{"destination": "0.0.0.0/0", "target": reference(&idx(Kind::NatGateway, "nat", t), "id")}])
            };
            let subnets: Vec<Value> = (0..net.zones.len())
                .filter(|&z| net.private_table_of(z) == t)
                .map(|z| reference(&idx(Kind::Subnet, "private", z), "id"))
                .collect();
            out.push(self.res(
                idx(Kind::RouteTable, "private", t),
                attrs([
                    (route_table::VPC_ID, reference(&vpc, "id")),
                    (route_table::ROUTES, routes),
                    (route_table::SUBNET_IDS, Value::Array(subnets)),
                ]),
                Some(format!("{}-private-{t}", s.name)),
            ));
        }
        (out, tables)
    }

    /// The VPC's id: the existing one's, or the one prefect-ecs makes.
    fn vpc_id(&self) -> Value {
        match &self.spec.network.existing {
            Some(e) => json!(e.vpc_id),
            None => reference(&addr(Kind::Vpc, "main"), "id"),
        }
    }

    fn resources(&self, api_key: Option<SecretValue>) -> Vec<Desired> {
        let s = self.spec;
        let net = &s.network;
        let mut out = Vec::new();

        let tables = match net.existing {
            Some(_) => 0,
            None => {
                let (network, tables) = self.network();
                out.extend(network);
                tables
            }
        };
        let sg = addr(Kind::SecurityGroup, "worker");
        out.push(described_once(self.res(
            sg.clone(),
            attrs([
                (security_group::VPC_ID, self.vpc_id()),
                (security_group::GROUP_NAME, json!(format!("{}-worker", s.name))),
                (security_group::DESCRIPTION, json!("prefect-ecs workers: all egress, no ingress")),
                (security_group::INGRESS, json!([])),
                (security_group::EGRESS, json!([{"protocol": "-1", "from_port": null, "to_port": null, "cidr": "0.0.0.0/0"}])),
            ]),
            Some(format!("{}-worker", s.name)),
        )));
        out.extend(self.endpoints(tables));

        if let Some(credential) = s
            .prefect
            .credential
            .as_ref()
            .filter(|_| s.secret.arn.is_none())
        {
            let mut sec = self.res(
                addr(Kind::Secret, "api_key"),
                attrs([
                    (secret::NAME, json!(s.secret.name)),
                    (
                        secret::DESCRIPTION,
                        json!(format!(
                            "{} for the prefect-ecs workers",
                            credential.kind.describe()
                        )),
                    ),
                    (secret::SCHEDULED_FOR_DELETION, json!(false)),
                    (secret::KMS_KEY_ID, json!(s.secret.kms_key_id)),
                ]),
                None,
            );
            sec.sensitive = api_key;
            out.push(sec);
        }

        let trust = json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": ["ecs-tasks.amazonaws.com"]}, "Action": ["sts:AssumeRole"]}]
        });
        let exec_role = addr(Kind::IamRole, "execution");
        let task_role = addr(Kind::IamRole, "task");
        out.push(self.res(
            exec_role.clone(),
            attrs([
                (iam_role::NAME, json!(s.iam.execution_role_name)),
                (iam_role::ASSUME_ROLE_POLICY, trust.clone()),
                (iam_role::MANAGED_POLICY_ARNS, json!([EXECUTION_POLICY_ARN])),
                (iam_role::PATH, json!(s.iam.path)),
                (
                    iam_role::PERMISSIONS_BOUNDARY,
                    json!(s.iam.permissions_boundary),
                ),
            ]),
            None,
        ));
        out.push(self.res(
            task_role.clone(),
            attrs([
                (iam_role::NAME, json!(s.iam.task_role_name)),
                (iam_role::ASSUME_ROLE_POLICY, trust.clone()),
                (iam_role::MANAGED_POLICY_ARNS, json!([])),
                (iam_role::PATH, json!(s.iam.path)),
                (
                    iam_role::PERMISSIONS_BOUNDARY,
                    json!(s.iam.permissions_boundary),
                ),
            ]),
            None,
        ));
        let mut pass: Vec<Value> = vec![reference(&exec_role, "arn")];
        if let Some(name) = &s.iam.flow_run_role_name {
            let flow_run = addr(Kind::IamRole, "flow_run");
            out.push(self.res(
                flow_run.clone(),
                attrs([
                    (iam_role::NAME, json!(name)),
                    (iam_role::ASSUME_ROLE_POLICY, trust.clone()),
                    (iam_role::MANAGED_POLICY_ARNS, json!([])),
                    (iam_role::PATH, json!(s.iam.path)),
                    (
                        iam_role::PERMISSIONS_BOUNDARY,
                        json!(s.iam.permissions_boundary),
                    ),
                ]),
                None,
            ));
            pass.push(reference(&flow_run, "arn"));
        }
        if s.prefect.credential.is_some() {
            out.push(Desired::new(
                addr(Kind::IamRolePolicy, "execution"),
                attrs([
                    (iam_role_policy::ROLE, reference(&exec_role, "name")),
                    (iam_role_policy::NAME, json!("read-prefect-api-key")),
                    (iam_role_policy::DOCUMENT, self.execution_policy()),
                ]),
            ));
        }
        out.push(Desired::new(
            addr(Kind::IamRolePolicy, "task"),
            attrs([
                (iam_role_policy::ROLE, reference(&task_role, "name")),
                (iam_role_policy::NAME, json!("prefect-ecs-worker")),
                (
                    iam_role_policy::DOCUMENT,
                    worker_permissions(
                        pass,
                        self.cluster_arn(),
                        reference(&addr(Kind::LogGroup, "workers"), LOG_STREAMS_ARN),
                        reference(&addr(Kind::SqsQueue, EVENTS), "arn"),
                    ),
                ),
            ]),
        ));

        let ns = addr(Kind::Namespace, "main");
        out.push(self.res(
            ns.clone(),
            attrs([
                (namespace::NAME, json!(s.namespace)),
                (namespace::VPC_ID, self.vpc_id()),
            ]),
            None,
        ));
        let logs = addr(Kind::LogGroup, "workers");
        out.push(self.res(
            logs.clone(),
            attrs([
                (log_group::NAME, json!(s.logs.group)),
                (log_group::RETENTION_IN_DAYS, json!(s.logs.retention_days)),
            ]),
            None,
        ));
        if s.cluster.arn.is_none() {
            out.push(self.res(
                addr(Kind::EcsCluster, "main"),
                attrs([
                    (ecs_cluster::NAME, json!(s.cluster.name)),
                    (
                        ecs_cluster::CONTAINER_INSIGHTS,
                        json!(if s.cluster.container_insights {
                            "enabled"
                        } else {
                            "disabled"
                        }),
                    ),
                ]),
                None,
            ));
        }
        out.extend(self.task_events(s));
        for w in &s.workers {
            out.extend(self.worker(w, tables));
        }
        for pool in &s.work_pools {
            out.push(self.work_pool(pool, tables));
        }
        out
    }

    /// Crash detection: the cluster's ECS task state changes, sent by an EventBridge rule to
    /// a queue only that rule may send to, which the workers' observer reads (prefect-aws's
    /// own stack, `templates/ecs/service.json`, makes the same three).
    fn task_events(&self, s: &Spec) -> Vec<Desired> {
        let queue = addr(Kind::SqsQueue, EVENTS);
        let rule = addr(Kind::EventRule, EVENTS);
        vec![
            self.res(
                queue.clone(),
                attrs([
                    (sqs_queue::NAME, json!(events_queue_name(&s.name))),
                    // prefect-aws's stack: a week.
                    (sqs_queue::MESSAGE_RETENTION_PERIOD, json!(604_800)),
                ]),
                None,
            ),
            self.res(
                rule.clone(),
                attrs([
                    (event_rule::NAME, json!(events_rule_name(&s.name))),
                    (
                        event_rule::EVENT_PATTERN,
                        json!({
                            "source": ["aws.ecs"],
                            "detail-type": ["ECS Task State Change"],
                            "detail": {"clusterArn": [self.cluster_arn()]},
                        }),
                    ),
                    (event_rule::STATE, json!("ENABLED")),
                    (event_rule::TARGET_ARN, reference(&queue, "arn")),
                ]),
                None,
            ),
            Desired::new(
                addr(Kind::SqsQueuePolicy, EVENTS),
                attrs([
                    (sqs_queue_policy::QUEUE_URL, reference(&queue, "url")),
                    (
                        sqs_queue_policy::DOCUMENT,
                        json!({"Version": "2012-10-17", "Statement": [{
                            "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"},
                            "Action": ["sqs:SendMessage"],
                            "Resource": [reference(&queue, "arn")],
                            "Condition": {"ArnEquals": {"aws:SourceArn": reference(&rule, "arn")}},
                        }]}),
                    ),
                ]),
            ),
        ]
    }

    /// Where the workers' tasks (and the flow runs they launch) run: `task_subnets`' tier,
    /// each task with a public IP in the public one.
    fn task_network(&self) -> (Vec<Value>, &'static str) {
        let tier = self.spec.network.task_subnets;
        let subnets = match &self.spec.network.existing {
            Some(e) => e.subnet_ids.iter().map(|id| json!(id)).collect(),
            None => (0..self.spec.network.zones.len())
                .map(|i| reference(&idx(Kind::Subnet, tier.as_str(), i), "id"))
                .collect(),
        };
        let public_ip = if tier == Tier::Public {
            "ENABLED"
        } else {
            "DISABLED"
        };
        (subnets, public_ip)
    }

    /// The route tables of the task subnets.
    fn task_route_tables(&self, private_tables: usize) -> Vec<Address> {
        if self.spec.network.existing.is_some() {
            return Vec::new(); // the VPC's own
        }
        match self.spec.network.task_subnets {
            Tier::Public => vec![addr(Kind::RouteTable, "public")],
            Tier::Private => (0..private_tables)
                .map(|t| idx(Kind::RouteTable, "private", t))
                .collect(),
        }
    }

    /// What a task needs before it can reach what it calls at start: its subnets' routes,
    /// and without a NAT the endpoints it reaches AWS through (a task started before an
    /// interface endpoint is available cannot pull its image or read its secret).
    fn task_routes(&self, private_tables: usize) -> Vec<Address> {
        let mut out = self.task_route_tables(private_tables);
        if self.spec.network.nat == NatMode::None {
            out.extend(self.endpoint_addresses());
        }
        out
    }

    fn endpoint_addresses(&self) -> Vec<Address> {
        let e = &self.spec.network.endpoints;
        e.s3.then(|| addr(Kind::VpcEndpoint, "s3"))
            .into_iter()
            .chain(e.interface.iter().map(|s| addr(Kind::VpcEndpoint, s)))
            .collect()
    }

    /// `[network.endpoints]`: the S3 gateway endpoint on the task subnets' route tables, and
    /// each interface endpoint with an ENI in every task subnet, behind a security group that
    /// lets in HTTPS from those subnets only.
    fn endpoints(&self, private_tables: usize) -> Vec<Desired> {
        let s = self.spec;
        let e = &s.network.endpoints;
        let service = |name: &str| json!(format!("com.amazonaws.{}.{name}", self.region));
        let mut out = Vec::new();
        if e.s3 {
            let tables: Vec<Value> = self
                .task_route_tables(private_tables)
                .iter()
                .map(|t| reference(t, "id"))
                .collect();
            out.push(self.res(
                addr(Kind::VpcEndpoint, "s3"),
                attrs([
                    (vpc_endpoint::VPC_ID, self.vpc_id()),
                    (vpc_endpoint::SERVICE_NAME, service("s3")),
                    (vpc_endpoint::ENDPOINT_TYPE, json!(vpc_endpoint::GATEWAY)),
                    (vpc_endpoint::ROUTE_TABLE_IDS, Value::Array(tables)),
                ]),
                Some(format!("{}-s3", s.name)),
            ));
        }
        if e.interface.is_empty() {
            return out;
        }
        let sg = addr(Kind::SecurityGroup, "endpoints");
        let tier = s.network.task_subnets;
        let ingress: Vec<Value> = s
            .network
            .zones
            .iter()
            .map(|z| match tier {
                Tier::Public => z.public_cidr,
                Tier::Private => z.private_cidr,
            })
            .map(|cidr| json!({"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr": cidr.to_string()}))
            .collect();
        out.push(described_once(self.res(
            sg.clone(),
            attrs([
                (security_group::VPC_ID, self.vpc_id()),
                (
                    security_group::GROUP_NAME,
                    json!(format!("{}-endpoints", s.name)),
                ),
                (
                    security_group::DESCRIPTION,
                    json!("prefect-ecs interface endpoints: HTTPS from the task subnets"),
                ),
                (security_group::INGRESS, Value::Array(ingress)),
                (security_group::EGRESS, json!([])),
            ]),
            Some(format!("{}-endpoints", s.name)),
        )));
        let (subnets, _) = self.task_network();
        for name in &e.interface {
            out.push(self.res(
                addr(Kind::VpcEndpoint, name),
                attrs([
                    (vpc_endpoint::VPC_ID, self.vpc_id()),
                    (vpc_endpoint::SERVICE_NAME, service(name)),
                    (vpc_endpoint::ENDPOINT_TYPE, json!(vpc_endpoint::INTERFACE)),
                    (vpc_endpoint::SUBNET_IDS, Value::Array(subnets.clone())),
                    (
                        vpc_endpoint::SECURITY_GROUP_IDS,
                        json!([reference(&sg, "id")]),
                    ),
                    (vpc_endpoint::PRIVATE_DNS_ENABLED, json!(true)),
                ]),
                Some(format!("{}-{name}", s.name)),
            ));
        }
        out
    }

    /// A Prefect work pool of type `ecs`: the server's default base job template with its
    /// variables' defaults set to the live stack, so deployments need no AWS ids of their own.
    fn work_pool(&self, pool: &WorkPool, private_tables: usize) -> Desired {
        let s = self.spec;
        let (subnets, assign_public_ip) = self.task_network();
        let mut defaults = vec![
            ("cluster", self.cluster_arn()),
            ("vpc_id", self.vpc_id()),
            (
                "network_configuration",
                json!({
                    "subnets": subnets,
                    "securityGroups": [reference(&addr(Kind::SecurityGroup, "worker"), "id")],
                    "assignPublicIp": assign_public_ip,
                }),
            ),
            (
                "execution_role_arn",
                reference(&addr(Kind::IamRole, "execution"), "arn"),
            ),
            ("launch_type", json!("FARGATE")),
            ("configure_cloudwatch_logs", json!(true)),
            (
                "cloudwatch_logs_options",
                json!({
                    "awslogs-group": reference(&addr(Kind::LogGroup, "workers"), "name"),
                    "awslogs-region": self.region,
                    "awslogs-stream-prefix": "flow-run",
                    // prefect-aws asks ECS to create the group by default, which the
                    // execution role may not (its managed policy has no logs:CreateLogGroup):
                    // the flow run's task would fail to start. The stack made the group.
                    "awslogs-create-group": "false",
                }),
            ),
            // One task-definition family per pool, reused across worker restarts while the
            // flow runs' configuration is the same: no new revision per flow run or restart.
            ("family", json!(flow_run_family(&s.name, &pool.name))),
            ("match_latest_revision_in_family", json!(true)),
        ];
        if s.iam.flow_run_role_name.is_some() {
            defaults.push((
                "task_role_arn",
                reference(&addr(Kind::IamRole, "flow_run"), "arn"),
            ));
        }
        // The flow-run tasks get the credential the way the worker does: as a `secrets`
        // reference to the stack's secret, never as a plain environment override in RunTask.
        if let Some(c) = &s.prefect.credential {
            defaults.push((secret_arn_variable(c.kind), self.secret_arn()));
        }
        let mut template = with_secret_arn_variables(self.pool_template);
        // ARM flow runs: the task definition the worker registers for them says so.
        if pool.architecture == Arch::Arm64
            && let Some(td) = template
                .pointer_mut("/job_configuration/task_definition")
                .and_then(Value::as_object_mut)
        {
            td.insert(
                "runtimePlatform".into(),
                json!({"cpuArchitecture": task_definition::ARM64, "operatingSystemFamily": "LINUX"}),
            );
        }
        if let Some(props) = template
            .pointer_mut("/variables/properties")
            .and_then(Value::as_object_mut)
        {
            for (key, value) in defaults {
                // Only variables this Prefect's template knows: an unknown one is a 422.
                if let Some(Value::Object(var)) = props.get_mut(key) {
                    var.insert("default".into(), value);
                }
            }
        }
        let address = addr(Kind::WorkPool, &pool.name);
        let mut tags = crate::model::ownership_tags(&s.name, &address, &BTreeMap::new());
        if pool.adopt {
            tags[TAG_ADOPTED] = json!("true");
        }
        let mut attrs = attrs([
            (work_pool::NAME, json!(pool.name)),
            (work_pool::TYPE, json!("ecs")),
            (
                work_pool::DESCRIPTION,
                json!(format!(
                    "ECS workers of prefect-ecs stack \"{}\". Managed by prefect-ecs: \
                     `prefect-ecs apply` puts back any edit to the base job template.",
                    s.name
                )),
            ),
            (work_pool::BASE_JOB_TEMPLATE, template),
            (kinds::TAGS, tags),
        ]);
        let digest = spec_digest(Kind::WorkPool, &attrs);
        attrs.get_mut(kinds::TAGS).expect("just inserted")[TAG_SPEC] = json!(digest);
        let mut d = Desired::new(address, attrs);
        // Flow runs launched before their network can reach the internet fail to start.
        d.extra_deps.extend(self.task_routes(private_tables));
        d
    }

    fn worker(&self, w: &Worker, private_tables: usize) -> Vec<Desired> {
        let s = self.spec;
        let (ns, logs) = (
            &addr(Kind::Namespace, "main"),
            &addr(Kind::LogGroup, "workers"),
        );
        let sg = &addr(Kind::SecurityGroup, "worker");
        let sd = addr(Kind::CloudMapService, &w.name);
        let td = addr(Kind::TaskDefinition, &w.name);
        let svc = addr(Kind::EcsService, &w.name);
        let sd_res = self.res(
            sd.clone(),
            attrs([
                (cloud_map_service::NAME, json!(w.name)),
                (cloud_map_service::NAMESPACE_ID, reference(ns, "id")),
                (
                    cloud_map_service::DNS_RECORDS,
                    json!([{"type": "A", "ttl": 60}]),
                ),
            ]),
            None,
        );
        let mut env: BTreeMap<String, String> = w.env.clone();
        env.insert("PREFECT_API_URL".into(), s.prefect.api_url.clone());
        if let Some(cloud) = &s.prefect.cloud {
            env.insert("PREFECT_ACCOUNT_ID".into(), cloud.account_id.clone());
            env.insert("PREFECT_WORKSPACE_ID".into(), cloud.workspace_id.clone());
        }
        match extra_pip_packages(&w.image, w.env.get("EXTRA_PIP_PACKAGES")) {
            Some(p) => env.insert("EXTRA_PIP_PACKAGES".into(), p),
            None => env.remove("EXTRA_PIP_PACKAGES"),
        };
        // The health endpoint `--with-healthcheck` serves (Prefect's default port, made explicit).
        env.insert(
            "PREFECT_WORKER_WEBSERVER_PORT".into(),
            HEALTH_PORT.to_string(),
        );
        // The observer that marks a flow run whose task died as crashed reads the stack's
        // queue (prefect-aws's default name is another, which the stack does not make).
        for (k, v) in [
            (
                "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_ENABLED",
                "true".to_owned(),
            ),
            (
                "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME",
                events_queue_name(&s.name),
            ),
            (
                "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_REGION",
                self.region.to_owned(),
            ),
        ] {
            env.insert(k.into(), v);
        }
        let secrets: Vec<Value> = s
            .prefect
            .credential
            .iter()
            .map(|c| json!({"name": c.kind.env_var(), "value_from": self.secret_arn()}))
            .collect();
        let environment: Vec<Value> = env
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        let td_res = self.res(
            td.clone(),
            attrs([
                (task_definition::FAMILY, json!(w.family)),
                (task_definition::CPU_ARCHITECTURE, json!(w.architecture.ecs())),
                (task_definition::CPU, json!(w.cpu.to_string())),
                (task_definition::MEMORY, json!(w.memory.to_string())),
                (task_definition::NETWORK_MODE, json!("awsvpc")),
                (task_definition::REQUIRES_COMPATIBILITIES, json!(["FARGATE"])),
                (task_definition::EXECUTION_ROLE_ARN, reference(&addr(Kind::IamRole, "execution"), "arn")),
                (task_definition::TASK_ROLE_ARN, reference(&addr(Kind::IamRole, "task"), "arn")),
                (
                    task_definition::CONTAINER,
                    json!({
                        "name": CONTAINER_NAME,
                        "image": w.image,
                        "essential": true,
                        "command": ["prefect", "worker", "start", "--pool", w.work_pool, "--type", "ecs", "--name", w.name, "--with-healthcheck"],
                        "environment": environment,
                        "secrets": secrets,
                        "health_check": {
                            "command": ["CMD-SHELL", format!("python -c \"import urllib.request; urllib.request.urlopen('http://localhost:{HEALTH_PORT}/health', timeout=5)\" || exit 1")],
                            "interval": 30,
                            "timeout": 10,
                            "retries": 3,
                            // pip installs EXTRA_PIP_PACKAGES before the worker starts.
                            "start_period": 120,
                        },
                        "stop_timeout": WORKER_STOP_TIMEOUT,
                        "log_configuration": {
                            "driver": "awslogs",
                            "options": {
                                "awslogs-group": reference(logs, "name"),
                                "awslogs-region": self.region,
                                // `<worker>/worker/<task id>`: each worker's streams apart.
                                "awslogs-stream-prefix": w.name,
                            }
                        }
                    }),
                ),
            ]),
            None,
        );
        let (subnets, assign_public_ip) = self.task_network();
        let mut svc_res = self.res(
            svc,
            attrs([
                (ecs_service::NAME, json!(w.name)),
                (ecs_service::CLUSTER, self.cluster_arn()),
                (ecs_service::TASK_DEFINITION, reference(&td, "arn")),
                (ecs_service::DESIRED_COUNT, json!(w.desired_count)),
                (ecs_service::LAUNCH_TYPE, json!("FARGATE")),
                (
                    ecs_service::NETWORK,
                    json!({
                        "subnets": subnets,
                        "security_groups": [reference(sg, "id")],
                        "assign_public_ip": assign_public_ip,
                    }),
                ),
                (
                    ecs_service::SERVICE_REGISTRIES,
                    json!([reference(&sd, "arn")]),
                ),
                (
                    ecs_service::DEPLOYMENT_CIRCUIT_BREAKER,
                    json!({"enable": true, "rollback": true}),
                ),
            ]),
            None,
        );
        // A task without a route to the internet cannot pull its image or reach Prefect; a
        // task whose roles lack their policies fails at start. Neither is a reference.
        if s.prefect.credential.is_some() {
            svc_res
                .extra_deps
                .push(addr(Kind::IamRolePolicy, "execution"));
        }
        svc_res.extra_deps.push(addr(Kind::IamRolePolicy, "task"));
        // The observer looks for its queue once, at start: it must exist and receive events.
        svc_res.extra_deps.push(addr(Kind::SqsQueuePolicy, EVENTS));
        svc_res.extra_deps.push(addr(Kind::EventRule, EVENTS));
        svc_res.extra_deps.extend(self.task_routes(private_tables));
        vec![sd_res, td_res, svc_res]
    }
}

/// The address name of the task events' queue, rule and queue policy.
pub const EVENTS: &str = "task_events";

/// The queue the workers' observer reads: `<stack>-ecs-events` (SQS: at most 80 of letters,
/// digits, `-`, `_`; a stack name is at most 28).
pub fn events_queue_name(stack: &str) -> String {
    format!("{stack}-ecs-events")
}

/// The EventBridge rule that sends the cluster's task state changes to that queue (at most
/// 64 of letters, digits, `.`, `-`, `_`).
pub fn events_rule_name(stack: &str) -> String {
    format!("{stack}-ecs-task-events")
}

/// The id of the rule's one target, the queue.
pub const EVENTS_TARGET_ID: &str = "worker-observer";

/// The flow-run task-definition families the stack's own pools register into, by pool: what
/// destroy deregisters besides what prefect-ecs created (an adopted pool outlives the stack,
/// and so do its flow runs' definitions).
pub fn flow_run_families(s: &Spec) -> Vec<(String, String)> {
    s.work_pools
        .iter()
        .filter(|p| !p.adopt)
        .map(|p| (p.name.clone(), flow_run_family(&s.name, &p.name)))
        .collect()
}

/// The task-definition family of a pool's flow runs: `<stack>_<pool>`, in the characters ECS
/// allows in a family (letters, digits, `-`, `_`), at most 255 of them.
pub fn flow_run_family(stack: &str, pool: &str) -> String {
    format!("{stack}_{pool}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(255)
        .collect()
}

/// The job-template variable through which prefect-aws's ECS worker gives flow-run tasks the
/// credential as a container `secrets` entry (and drops it from the environment overrides).
fn secret_arn_variable(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::ApiKey => "prefect_api_key_secret_arn",
        CredentialKind::AuthString => "prefect_api_auth_string_secret_arn",
    }
}

/// The base job template with prefect-aws 0.7's two secret-ARN variables, declared as
/// prefect-aws declares them. A Prefect server serves a default that predates them; without
/// them the worker passes `PREFECT_API_KEY` to every flow-run task in plain text.
fn with_secret_arn_variables(template: &Value) -> Value {
    let mut template = template.clone();
    for (name, what) in [
        ("prefect_api_key_secret_arn", "Prefect API key"),
        (
            "prefect_api_auth_string_secret_arn",
            "Prefect API auth string",
        ),
    ] {
        let Some(props) = template
            .pointer_mut("/variables/properties")
            .and_then(Value::as_object_mut)
        else {
            return template;
        };
        props.entry(name).or_insert_with(|| {
            json!({
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "default": null,
                "title": format!("{what} Secret ARN"),
                "description": format!(
                    "An ARN of an AWS secret containing a {what}: flow-run tasks receive it \
                     as a container secret instead of a plain environment variable."
                ),
            })
        });
        if let Some(job) = template
            .get_mut("job_configuration")
            .and_then(Value::as_object_mut)
        {
            job.entry(name)
                .or_insert_with(|| json!(format!("{{{{ {name} }}}}")));
        }
    }
    template
}

/// The digest recorded in [`TAG_SPEC`]: of the normalized desired attributes, references
/// unresolved (so it depends on the spec only, not on ids AWS picked).
fn spec_digest(kind: Kind, attrs: &Attrs) -> String {
    use sha2::{Digest, Sha256};
    let normalized: BTreeMap<&String, Value> = attrs
        .iter()
        .map(|(k, v)| (k, crate::diff::normalize(kind, k, v)))
        .collect();
    let bytes = serde_json::to_vec(&normalized).expect("JSON values serialize");
    Sha256::digest(&bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn attrs<const N: usize>(pairs: [(&str, Value); N]) -> Attrs {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

pub fn policy(statements: Vec<(Vec<&str>, Vec<Value>)>) -> Value {
    let statements: Vec<Value> = statements
        .into_iter()
        .map(|(actions, resources)| json!({"Effect": "Allow", "Action": actions, "Resource": resources}))
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}
