//! Tests of the pure core on real specs: graph edges and order, plans against fabricated
//! observed states, and the executor against a fake provider. No AWS, no network.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use petgraph::algo::has_path_connecting;
use serde_json::json;

use crate::apply::{Op, Provider, ProviderError, execute, schedule};
use crate::graph::{GraphError, StackGraph, build};
use crate::model::{
    Address, Attrs, Conflict, Desired, Kind, Observed, ObservedState, Outputs, reference, resolve,
};
use crate::plan::{Action, Plan, PlanError, compute};
use crate::render::{PlanDoc, markdown};
use crate::secret::SecretValue;
use crate::spec::{self, Spec};

fn load(name: &str) -> Spec {
    load_in(name, None)
}

/// Every environment of a stack file (the file itself when it has none), each with the
/// suffix its snapshots are named with (`""`, `"@prod"`).
fn load_all(name: &str) -> Vec<(String, Spec)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../stacks")
        .join(name);
    let environments = spec::environments(&path).unwrap();
    if environments.is_empty() {
        return vec![(String::new(), load(name))];
    }
    environments
        .iter()
        .map(|e| (format!("@{e}"), load_in(name, Some(e))))
        .collect()
}

fn load_in(name: &str, environment: Option<&str>) -> Spec {
    let env = |k: &str| {
        match k {
        "PREFECT_ACCOUNT_ID" => Some("9b5d7c4e-1f2a-4b3c-8d9e-0a1b2c3d4e5f".to_string()),
        "PREFECT_WORKSPACE_ID" => Some("3c2b1a09-8e7d-4c6b-9a5f-4e3d2c1b0a99".to_string()),
        "PREFECT_API_URL" => Some(
            "https://api.prefect.cloud/api/accounts/9b5d7c4e-1f2a-4b3c-8d9e-0a1b2c3d4e5f/workspaces/3c2b1a09-8e7d-4c6b-9a5f-4e3d2c1b0a99"
                .to_string(),
        ),
        _ => None,
    }
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../stacks")
        .join(name);
    spec::load_env(&path, &env, Some("us-east-1"), environment)
        .unwrap_or_else(|e| panic!("{}", spec::render_plain(&e)))
}

fn key() -> Option<SecretValue> {
    Some(SecretValue::new("pnu_unit_test_key".into()))
}

/// The default `ecs` base job template as a Prefect 3.8 server serves it.
fn template() -> serde_json::Value {
    serde_json::from_str(include_str!("testdata/ecs-base-job-template.json")).unwrap()
}

fn dev() -> StackGraph {
    build(&load("dev.toml"), "us-east-1", key(), Some(&template())).unwrap()
}

/// The dev stack's graph with another API key.
fn dev_with_key(key: &str) -> StackGraph {
    build(
        &load("dev.toml"),
        "us-east-1",
        Some(SecretValue::new(key.into())),
        Some(&template()),
    )
    .unwrap()
}

fn a(s: &str) -> Address {
    Address::parse(s).unwrap_or_else(|| panic!("bad address {s}"))
}

/// `later` comes after `earlier` through a chain of dependencies.
fn after(g: &StackGraph, later: &str, earlier: &str) -> bool {
    let idx = |s: &str| {
        g.graph
            .node_indices()
            .find(|&i| g.graph[i].address == a(s))
            .unwrap_or_else(|| panic!("{s} not in graph"))
    };
    has_path_connecting(&g.graph, idx(earlier), idx(later), None)
}

#[test]
fn the_orderings_aws_needs_are_edges() {
    let g = dev();
    let svc = "ecs_service.dev-worker";
    let td = "ecs_task_definition.dev-worker";
    let needs = [
        ("nat_gateway.nat[0]", "internet_gateway.main"),
        ("nat_gateway.nat[0]", "subnet.public[0]"),
        (svc, "route_table.private[0]"),
        (svc, "iam_role_policy.execution"),
        (svc, "iam_role_policy.task"),
        (svc, "secret.api_key"),
        (svc, "log_group.workers"),
        (svc, "service_discovery_service.dev-worker"),
        (svc, "security_group.worker"),
        (svc, td),
        (td, "iam_role.execution"),
        (td, "iam_role.task"),
        (td, "log_group.workers"),
        (td, "secret.api_key"),
        (
            "service_discovery_service.dev-worker",
            "service_discovery_namespace.main",
        ),
        ("iam_role_policy.execution", "secret.api_key"),
        ("route_table.private[0]", "nat_gateway.nat[0]"),
        ("route_table.public", "internet_gateway.main"),
    ];
    for (later, earlier) in needs {
        assert!(
            after(&g, later, earlier),
            "{later} must come after {earlier}"
        );
    }
    assert!(!after(&g, "internet_gateway.main", "nat_gateway.nat[0]"));
}

#[test]
fn order_respects_every_edge_and_is_stable() {
    for stack in ["dev.toml", "minimal.toml", "prod.toml"] {
        let g = build(&load(stack), "us-east-1", key(), Some(&template())).unwrap();
        let order = g.order().unwrap();
        assert_eq!(order.len(), g.graph.node_count());
        let pos: BTreeMap<&Address, usize> =
            order.iter().enumerate().map(|(i, a)| (a, i)).collect();
        for e in g.graph.edge_indices() {
            let (f, t) = g.graph.edge_endpoints(e).unwrap();
            assert!(
                pos[&g.graph[f].address] < pos[&g.graph[t].address],
                "{stack}: {} before {}",
                g.graph[f].address,
                g.graph[t].address
            );
        }
        assert_eq!(
            order,
            build(&load(stack), "us-east-1", key(), Some(&template()))
                .unwrap()
                .order()
                .unwrap()
        );
    }
}

#[test]
fn nat_modes_shape_the_network() {
    let prod = build(&load("prod.toml"), "us-east-1", key(), Some(&template())).unwrap();
    let nats: Vec<_> = prod
        .resources()
        .filter(|d| d.address.kind == Kind::NatGateway)
        .collect();
    let tables: Vec<_> = prod
        .resources()
        .filter(|d| d.address.name.starts_with("private["))
        .filter(|d| d.address.kind == Kind::RouteTable)
        .collect();
    assert_eq!(
        (nats.len(), tables.len()),
        (3, 3),
        "per-az: one NAT and one private route table per zone"
    );
    let mut spec = load("dev.toml");
    spec.network.nat = spec::NatMode::None;
    spec.network.task_subnets = spec::Tier::Public;
    let g = build(&spec, "us-east-1", key(), Some(&template())).unwrap();
    assert_eq!(
        g.resources()
            .filter(|d| d.address.kind == Kind::NatGateway)
            .count(),
        0
    );
    let svc = g.get(&a("ecs_service.dev-worker")).unwrap();
    assert_eq!(svc.attrs["network"]["assign_public_ip"], "ENABLED");
    assert_eq!(
        svc.attrs["network"]["subnets"][0],
        reference(&a("subnet.public[0]"), "id")
    );
}

/// Issue 14: the S3 gateway endpoint is on the task subnets' route tables; each interface
/// endpoint has an ENI in every task subnet behind its own group, which lets in HTTPS from
/// those subnets only; without a NAT the workers and pools wait for the endpoints.
#[test]
fn endpoints_sit_where_the_tasks_run() {
    let dev = build(&load("dev.toml"), "us-east-1", key(), Some(&template())).unwrap();
    let s3 = dev.get(&a("vpc_endpoint.s3")).unwrap();
    assert_eq!(s3.attrs["service_name"], "com.amazonaws.us-east-1.s3");
    assert_eq!(
        s3.attrs["route_table_ids"],
        json!([reference(&a("route_table.private[0]"), "id")])
    );
    assert!(dev.get(&a("security_group.endpoints")).is_none());
    // With a NAT the workers do not wait for an endpoint: they can reach AWS without one.
    let svc = dev.get(&a("ecs_service.dev-worker")).unwrap();
    assert!(!svc.deps().iter().any(|d| d.kind == Kind::VpcEndpoint));

    let private = load("private.toml");
    let g = build(&private, "us-east-1", key(), Some(&template())).unwrap();
    assert_eq!(
        g.resources()
            .filter(|d| d.address.kind == Kind::NatGateway)
            .count(),
        0
    );
    let sg = g.get(&a("security_group.endpoints")).unwrap();
    let cidrs: Vec<String> = private
        .network
        .zones
        .iter()
        .map(|z| z.private_cidr.to_string())
        .collect();
    let ingress: Vec<&str> = sg.attrs["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|r| {
            assert_eq!(
                (r["protocol"].as_str(), r["from_port"].as_i64()),
                (Some("tcp"), Some(443))
            )
        })
        .map(|r| r["cidr"].as_str().unwrap())
        .collect();
    assert_eq!(ingress, cidrs);
    assert_eq!(sg.attrs["egress"], json!([]));
    let ecr = g.get(&a("vpc_endpoint.ecr.dkr")).unwrap();
    assert_eq!(ecr.attrs["endpoint_type"], "Interface");
    assert_eq!(ecr.attrs["private_dns_enabled"], true);
    assert_eq!(
        ecr.attrs["subnet_ids"],
        json!([
            reference(&a("subnet.private[0]"), "id"),
            reference(&a("subnet.private[1]"), "id")
        ])
    );
    let svc = g.get(&a("ecs_service.private-worker")).unwrap();
    assert_eq!(svc.attrs["network"]["assign_public_ip"], "DISABLED");
    let pool = g.get(&a("prefect_work_pool.private-pool")).unwrap();
    for e in [
        "s3",
        "ec2",
        "ecr.api",
        "ecr.dkr",
        "ecs",
        "logs",
        "secretsmanager",
        "sqs",
    ] {
        let e = a(&format!("vpc_endpoint.{e}"));
        assert!(svc.deps().contains(&e), "service waits for {e}");
        assert!(pool.deps().contains(&e), "pool waits for {e}");
    }
}

#[test]
fn a_cycle_is_an_error_naming_its_resources() {
    let x = a("vpc.x");
    let y = a("subnet.y");
    let z = a("subnet.z");
    let mut dx = Desired::new(x.clone(), Attrs::new());
    dx.extra_deps.push(y.clone());
    let dy = Desired::new(
        y.clone(),
        Attrs::from([("vpc".into(), reference(&x, "id"))]),
    );
    let dz = Desired::new(
        z.clone(),
        Attrs::from([("vpc".into(), reference(&x, "id"))]),
    );
    match StackGraph::from_resources(vec![dx, dy, dz]) {
        Err(GraphError::Cycle(names)) => assert_eq!(names, ["subnet.y", "vpc.x"]),
        other => panic!("expected a cycle, got {other:?}"),
    }
}

/// What AWS would report right after applying `g`: every attribute as desired, fake ids.
fn converged(g: &StackGraph) -> ObservedState {
    let outputs = |addr: &Address| -> Outputs {
        ["id", "arn", "name", "url", crate::graph::LOG_STREAMS_ARN]
            .iter()
            .map(|o| (o.to_string(), format!("{o}:{addr}")))
            .collect()
    };
    let resources = g
        .resources()
        .map(|d| {
            let lookup = |a: &Address, o: &str| Some(format!("{o}:{a}"));
            Observed {
                address: d.address.clone(),
                id: format!("id:{}", d.address),
                outputs: outputs(&d.address),
                attrs: d
                    .attrs
                    .iter()
                    .map(|(k, v)| (k.clone(), resolve(v, &lookup)))
                    .collect(),
                uses: d.deps().iter().map(|a| format!("id:{a}")).collect(),
                sensitive: d.sensitive.clone(),
                deleting: false,
            }
        })
        .collect();
    ObservedState {
        resources,
        conflicts: vec![],
        missing: vec![],
    }
}

fn actions(p: &Plan) -> BTreeMap<String, Action> {
    p.changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .map(|c| (c.address.to_string(), c.action))
        .collect()
}

#[test]
fn a_converged_stack_plans_no_changes() {
    let g = dev();
    let p = compute("dev", Some(&g), &converged(&g)).unwrap();
    assert_eq!(actions(&p), BTreeMap::new());
    assert_eq!(p.render(), "No changes. The stack matches the spec.\n");
}

#[test]
fn reordered_and_reencoded_observations_are_no_change() {
    let g = dev();
    let mut seen = converged(&g);
    for o in &mut seen.resources {
        if let Some(serde_json::Value::Array(items)) = o.attrs.get_mut("subnet_ids") {
            items.reverse();
        }
        if o.address.kind == Kind::IamRolePolicy {
            // IAM may answer a one-element list as a plain string.
            let doc = o.attrs.get_mut("document").unwrap();
            doc["Statement"][0]["Resource"] = doc["Statement"][0]["Resource"][0].clone();
        }
        if let Some(tags) = o.attrs.get_mut("tags") {
            tags["aws:cloudformation:stack-name"] = json!("added-by-aws");
        }
    }
    assert_eq!(
        actions(&compute("dev", Some(&g), &seen).unwrap()),
        BTreeMap::new()
    );
}

#[test]
fn drift_updates_in_place_and_a_forced_replacement_cascades() {
    let g = dev();
    let mut seen = converged(&g);
    let at = |s: &ObservedState, addr: &str| {
        s.resources
            .iter()
            .position(|o| o.address == a(addr))
            .unwrap()
    };
    let i = at(&seen, "log_group.workers");
    seen.resources[i]
        .attrs
        .insert("retention_in_days".into(), json!(7));
    let i = at(&seen, "secret.api_key");
    seen.resources[i].sensitive = Some(SecretValue::new("pnu_changed_out_of_band".into()));
    let i = at(&seen, "subnet.private[1]");
    seen.resources[i]
        .attrs
        .insert("cidr_block".into(), json!("10.0.200.0/24"));
    let p = compute("dev", Some(&g), &seen).unwrap();
    let acts = actions(&p);
    assert_eq!(acts["log_group.workers"], Action::Update);
    assert_eq!(acts["secret.api_key"], Action::Update);
    assert_eq!(acts["subnet.private[1]"], Action::Replace);
    // The replaced subnet's id is unknown until apply: its users change with it.
    assert_eq!(acts["route_table.private[0]"], Action::Update);
    assert_eq!(acts["ecs_service.dev-worker"], Action::Update);
    let text = p.render();
    assert!(text.contains("~ retention_in_days: 7 → 30"), "{text}");
    assert!(
        text.contains("~ value: (sensitive value changed)"),
        "{text}"
    );
    assert!(
        text.contains("~ cidr_block: \"10.0.200.0/24\" → \"10.0.144.0/20\"  # forces replacement"),
        "{text}"
    );
    assert!(
        !text.contains("pnu_"),
        "a secret value reached the plan:\n{text}"
    );
}

#[test]
fn orphans_and_duplicates_are_deleted_and_conflicts_refused() {
    let g = dev();
    let mut seen = converged(&g);
    let mut orphan = seen
        .resources
        .iter()
        .find(|o| o.address == a("ecs_service.dev-worker"))
        .unwrap()
        .clone();
    orphan.address = a("ecs_service.old-worker");
    orphan.id = "id:old".into();
    let mut dup = seen
        .resources
        .iter()
        .find(|o| o.address == a("vpc.main"))
        .unwrap()
        .clone();
    dup.id = "vpc-duplicate".into();
    seen.resources.push(orphan);
    seen.resources.push(dup);
    let p = compute("dev", Some(&g), &seen).unwrap();
    let deletes: Vec<_> = p
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .map(|c| (c.address.to_string(), c.reason.clone().unwrap()))
        .collect();
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    assert!(deletes.contains(&(
        "ecs_service.old-worker".into(),
        "no longer in the spec".into()
    )));
    assert!(
        deletes
            .iter()
            .any(|(addr, why)| addr == "vpc.main" && why.contains("same address"))
    );

    seen.conflicts.push(Conflict {
        address: a("ecs_cluster.main"),
        description: "ECS cluster prefect-cluster exists and is not tagged".into(),
    });
    let err = compute("dev", Some(&g), &seen).unwrap_err();
    let PlanError::NotOwned { conflicts, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(conflicts.len(), 1);
    assert!(
        err.to_string()
            .contains("ecs_cluster.main: ECS cluster prefect-cluster exists"),
        "{err}"
    );
}

#[test]
fn destroy_is_the_exact_inverse_of_creation() {
    let g = dev();
    let seen = converged(&g);
    let p = compute("dev", None, &seen).unwrap();
    assert!(p.changes.iter().all(|c| c.action == Action::Delete));
    let (steps, deps) = schedule(&p);
    let step_of = |addr: &str| steps.iter().position(|s| s.address == a(addr)).unwrap();
    for e in g.graph.edge_indices() {
        let (dep, user) = g.graph.edge_endpoints(e).unwrap();
        // `user` was created after `dep`, so it must be deleted before it.
        let (d, u) = (
            step_of(&g.graph[dep].address.to_string()),
            step_of(&g.graph[user].address.to_string()),
        );
        assert!(
            deps[d].contains(&u),
            "{} must wait for {}",
            steps[d].address,
            steps[u].address
        );
    }
}

/// A provider that records calls and fails where told.
#[derive(Default)]
struct Fake {
    fail: BTreeSet<String>,
    /// Raise this flag (as a Ctrl-C would) when the named resource is done.
    interrupt_after: Option<(String, std::sync::Arc<std::sync::atomic::AtomicBool>)>,
    log: RefCell<Vec<String>>,
    /// AWS steps in flight, and the most at once.
    running: RefCell<usize>,
    max_running: RefCell<usize>,
    /// All steps in flight (work pools too), and the most at once.
    all_running: RefCell<usize>,
    max_all_running: RefCell<usize>,
    /// Each AWS step calls, waits this long in `apply::idle` (a pending state polled), then
    /// calls again; AWS steps between their start and end, and the most at once.
    idle: Option<std::time::Duration>,
    in_progress: RefCell<usize>,
    max_in_progress: RefCell<usize>,
    /// The idle wait is a poll's pause ([`crate::apply::pause`]): a stop ends it.
    abandonable: bool,
}

impl Fake {
    async fn op(&self, what: String, address: &Address) -> Result<(), ProviderError> {
        let Some(idle) = self.idle.filter(|_| address.kind.is_aws()) else {
            return self.call(what, address).await;
        };
        *self.in_progress.borrow_mut() += 1;
        let now = *self.in_progress.borrow();
        let peak = (*self.max_in_progress.borrow()).max(now);
        *self.max_in_progress.borrow_mut() = peak;
        self.call(format!("{what} (start)"), address).await?;
        if self.abandonable {
            if crate::apply::pause(idle).await.is_err() {
                *self.in_progress.borrow_mut() -= 1;
                return Err(ProviderError(format!("{address}: stopped waiting")));
            }
        } else {
            crate::apply::idle(tokio::time::sleep(idle)).await;
        }
        let result = self.call(what, address).await;
        *self.in_progress.borrow_mut() -= 1;
        result
    }

    /// One call: counted in flight while it runs.
    async fn call(&self, what: String, address: &Address) -> Result<(), ProviderError> {
        let aws = address.kind.is_aws();
        *self.running.borrow_mut() += usize::from(aws);
        *self.all_running.borrow_mut() += 1;
        let now = *self.running.borrow();
        let peak = (*self.max_running.borrow()).max(now);
        *self.max_running.borrow_mut() = peak;
        let all = *self.all_running.borrow();
        let peak = (*self.max_all_running.borrow()).max(all);
        *self.max_all_running.borrow_mut() = peak;
        tokio::task::yield_now().await;
        *self.running.borrow_mut() -= usize::from(aws);
        *self.all_running.borrow_mut() -= 1;
        self.log.borrow_mut().push(what);
        if let Some((at, flag)) = &self.interrupt_after
            && *at == address.to_string()
        {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if self.fail.contains(&address.to_string()) {
            return Err(ProviderError(format!("{address}: injected failure")));
        }
        Ok(())
    }
}

impl Provider for Fake {
    async fn create(
        &self,
        address: &Address,
        attrs: &Attrs,
        _: Option<&SecretValue>,
    ) -> Result<Outputs, ProviderError> {
        assert!(
            !crate::model::contains_unknown(&json!(attrs)),
            "{address} was started with unresolved references"
        );
        self.op(format!("create {address}"), address).await?;
        Ok(["id", "arn", "name", "url", crate::graph::LOG_STREAMS_ARN]
            .iter()
            .map(|o| (o.to_string(), format!("{o}:{address}")))
            .collect())
    }
    async fn update(
        &self,
        address: &Address,
        _: &Attrs,
        _: Option<&SecretValue>,
        o: &Observed,
    ) -> Result<Outputs, ProviderError> {
        self.op(format!("update {address}"), address).await?;
        Ok(o.outputs.clone())
    }
    async fn delete(&self, o: &Observed) -> Result<(), ProviderError> {
        self.op(format!("delete {}", o.address), &o.address).await
    }
}

fn run(p: &Plan, fake: &Fake, parallelism: usize) -> crate::apply::Report {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(execute(p, fake, parallelism, |_| {}))
}

#[test]
fn apply_from_empty_runs_every_step_after_its_dependencies_within_the_parallelism() {
    let g = dev();
    let p = compute("dev", Some(&g), &ObservedState::default()).unwrap();
    let fake = Fake::default();
    let report = run(&p, &fake, 3);
    assert!(report.ok());
    let log = fake.log.borrow();
    assert_eq!(log.len(), g.graph.node_count());
    let pos = |addr: &Address| {
        log.iter()
            .position(|l| l == &format!("create {addr}"))
            .unwrap()
    };
    for e in g.graph.edge_indices() {
        let (dep, user) = g.graph.edge_endpoints(e).unwrap();
        assert!(pos(&g.graph[dep].address) < pos(&g.graph[user].address));
    }
    assert!(*fake.max_running.borrow() <= 3);
    assert!(
        *fake.max_running.borrow() > 1,
        "independent resources should run at once"
    );
}

#[test]
fn parallelism_bounds_aws_steps_and_the_work_pool_does_not_wait_for_a_slot() {
    let g = dev();
    let p = compute("dev", Some(&g), &ObservedState::default()).unwrap();
    let fake = Fake::default();
    assert!(run(&p, &fake, 1).ok());
    assert_eq!(*fake.max_running.borrow(), 1);
    assert_eq!(
        *fake.max_all_running.borrow(),
        2,
        "the pool step ran beside an AWS step"
    );
}

/// On tokio's paused clock: a sleep takes no real time, and a step that never gets its slot
/// back shows as the timeout, not as a hung test.
fn run_paused(
    p: &Plan,
    fake: &Fake,
    parallelism: usize,
    stop: &AtomicBool,
) -> crate::apply::Report {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(async {
            let run = crate::apply::execute_until(p, fake, parallelism, |_| {}, stop);
            tokio::time::timeout(std::time::Duration::from_secs(3600), run)
                .await
                .expect("the run ended (no step waited forever for a slot)")
        })
}

#[test]
fn a_step_that_only_waits_holds_no_slot() {
    let g = dev();
    let p = compute("dev", Some(&g), &ObservedState::default()).unwrap();
    let fake = Fake {
        idle: Some(std::time::Duration::from_secs(60)),
        ..Default::default()
    };
    let report = run_paused(&p, &fake, 1, &AtomicBool::new(false));
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(
        *fake.max_running.borrow(),
        1,
        "one AWS call in flight at a time"
    );
    // Before `idle`, the first step to wait kept every other AWS step from starting.
    assert!(
        *fake.max_in_progress.borrow() > 1,
        "steps started while another waited: {}",
        *fake.max_in_progress.borrow()
    );
    assert_eq!(
        fake.log.borrow().len(),
        2 * g.graph.node_count() - 1,
        "every AWS step called twice, the pool once"
    );
}

#[test]
fn an_interrupted_run_with_waiting_steps_ends() {
    let g = dev();
    let p = compute("dev", Some(&g), &ObservedState::default()).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let fake = Fake {
        idle: Some(std::time::Duration::from_secs(60)),
        interrupt_after: Some(("vpc.main".into(), std::sync::Arc::clone(&stop))),
        ..Default::default()
    };
    let report = run_paused(&p, &fake, 2, &stop);
    assert!(report.interrupted);
    assert!(!report.not_started.is_empty());
    assert!(*fake.max_running.borrow() <= 2);
}

#[test]
fn a_failure_skips_only_its_dependents() {
    let g = dev();
    let p = compute("dev", Some(&g), &ObservedState::default()).unwrap();
    let fake = Fake {
        fail: BTreeSet::from(["log_group.workers".to_string()]),
        ..Default::default()
    };
    let report = run(&p, &fake, 10);
    assert_eq!(report.failed.len(), 1);
    let skipped: BTreeSet<String> = report
        .skipped
        .iter()
        .map(|s| s.address.to_string())
        .collect();
    assert_eq!(
        skipped,
        BTreeSet::from([
            "ecs_task_definition.dev-worker".into(),
            "ecs_service.dev-worker".into(),
            // The worker's policy names the group's streams: the only logs it may read.
            "iam_role_policy.task".into(),
            // The pool's flow runs log to the group.
            "prefect_work_pool.ecs-work-pool".into(),
        ])
    );
    assert!(
        report
            .done
            .iter()
            .any(|(s, _)| s.address == a("nat_gateway.nat[0]") && s.op == Op::Create)
    );
    assert_eq!(report.done.len(), g.graph.node_count() - 5);
}

#[test]
fn a_task_definition_revision_is_replaced_after_the_service_moves() {
    let g = dev();
    let mut seen = converged(&g);
    let i = seen
        .resources
        .iter()
        .position(|o| o.address == a("ecs_task_definition.dev-worker"))
        .unwrap();
    seen.resources[i].attrs.insert("cpu".into(), json!("256"));
    let p = compute("dev", Some(&g), &seen).unwrap();
    assert_eq!(
        actions(&p),
        BTreeMap::from([
            ("ecs_task_definition.dev-worker".into(), Action::Replace),
            ("ecs_service.dev-worker".into(), Action::Update)
        ])
    );
    let fake = Fake::default();
    assert!(run(&p, &fake, 10).ok());
    assert_eq!(
        *fake.log.borrow(),
        [
            "create ecs_task_definition.dev-worker",
            "update ecs_service.dev-worker",
            "delete ecs_task_definition.dev-worker"
        ]
    );
}

/// The plan in all three renderings.
fn snapshot_plan(name: &str, p: &Plan) {
    let doc = PlanDoc::new(p);
    insta::assert_snapshot!(format!("{name}_human"), p.render());
    insta::assert_snapshot!(
        format!("{name}_json"),
        serde_json::to_string_pretty(&doc).unwrap()
    );
    insta::assert_snapshot!(format!("{name}_markdown"), markdown::render(&doc));
    for text in [
        p.render(),
        serde_json::to_string(&doc).unwrap(),
        markdown::render(&doc),
    ] {
        assert!(!text.contains("pnu_"), "a secret value reached {name}");
        assert!(!text.contains('\x1b'), "ANSI codes in {name}");
    }
}

#[test]
fn every_stack_snapshot() {
    insta::glob!("../../../stacks", "*.toml", |path| {
        for (env, spec) in load_all(path.file_name().unwrap().to_str().unwrap()) {
            let g = build(&spec, "us-east-1", key(), Some(&template())).unwrap();
            insta::assert_snapshot!(format!("graph{env}"), g.to_dot());
            insta::assert_snapshot!(
                format!("plan_from_empty{env}"),
                compute(&spec.name, Some(&g), &ObservedState::default())
                    .unwrap()
                    .render()
            );
            let p = compute(&spec.name, Some(&g), &ObservedState::default()).unwrap();
            let doc = PlanDoc::new(&p);
            insta::assert_snapshot!(
                format!("plan_from_empty_json{env}"),
                serde_json::to_string_pretty(&doc).unwrap()
            );
            insta::assert_snapshot!(
                format!("plan_from_empty_markdown{env}"),
                markdown::render(&doc)
            );
        }
    });
}

#[test]
fn an_interrupt_lets_in_flight_steps_finish_and_starts_nothing_new() {
    let g = dev();
    let p = compute("dev", Some(&g), &ObservedState::default()).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fake = Fake {
        interrupt_after: Some(("vpc.main".into(), stop.clone())),
        ..Default::default()
    };
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(crate::apply::execute_until(&p, &fake, 1, |_| {}, &stop));
    assert!(report.interrupted && !report.ok());
    // With one step at a time, the VPC was the only step in flight when the interrupt came.
    assert_eq!(*fake.log.borrow(), ["create vpc.main"]);
    assert_eq!(report.not_started.len(), g.graph.node_count() - 1);
    assert!(report.failed.is_empty() && report.skipped.is_empty());
}

/// The dev stack as converged, changed by `edit`, then planned.
fn scenario(edit: impl FnOnce(&mut ObservedState)) -> Plan {
    let g = dev();
    let mut seen = converged(&g);
    edit(&mut seen);
    compute("dev", Some(&g), &seen).unwrap()
}

fn observed_mut<'a>(s: &'a mut ObservedState, addr: &str) -> &'a mut Observed {
    s.resources
        .iter_mut()
        .find(|o| o.address == a(addr))
        .unwrap_or_else(|| panic!("{addr} not observed"))
}

#[test]
fn update_scenario_snapshot() {
    let p = scenario(|s| {
        observed_mut(s, "ecs_service.dev-worker")
            .attrs
            .insert("desired_count".into(), json!(3));
        observed_mut(s, "log_group.workers")
            .attrs
            .insert("retention_in_days".into(), json!(7));
        observed_mut(s, "secret.api_key").sensitive =
            Some(SecretValue::new("pnu_changed_out_of_band".into()));
        let tags = observed_mut(s, "security_group.worker")
            .attrs
            .get_mut("tags")
            .unwrap();
        tags.as_object_mut().unwrap().remove("Name");
        tags["owner"] = json!("someone-else");
        let doc = observed_mut(s, "iam_role_policy.task")
            .attrs
            .get_mut("document")
            .unwrap();
        doc["Statement"][0]["Action"]
            .as_array_mut()
            .unwrap()
            .retain(|a| a != "ecs:RunTask");
    });
    assert_eq!(p.summary().change, 5);
    snapshot_plan("scenario_update", &p);
}

#[test]
fn replace_scenario_snapshot() {
    let p = scenario(|s| {
        observed_mut(s, "subnet.private[1]")
            .attrs
            .insert("cidr_block".into(), json!("10.0.200.0/24"));
        let container = observed_mut(s, "ecs_task_definition.dev-worker")
            .attrs
            .get_mut("container")
            .unwrap();
        let env = container["environment"].as_array_mut().unwrap();
        for e in env.iter_mut() {
            if e["name"] == "PREFECT_API_URL" {
                e["value"] = json!("https://api.prefect.cloud/api/accounts/old");
            }
        }
        env.push(json!({"name": "LEFTOVER", "value": "1"}));
    });
    snapshot_plan("scenario_replace", &p);
    let text = p.render();
    assert!(
        text.contains(
            "~ container.environment[PREFECT_API_URL]: \"https://api.prefect.cloud/api/accounts/old\" → "
        ),
        "{text}"
    );
    assert!(
        text.contains("- container.environment[LEFTOVER]: \"1\"  # forces replacement"),
        "{text}"
    );
}

#[test]
fn orphan_scenario_snapshot() {
    let p = scenario(|s| {
        for addr in ["ecs_service.dev-worker", "ecs_task_definition.dev-worker"] {
            let mut old = s
                .resources
                .iter()
                .find(|o| o.address == a(addr))
                .unwrap()
                .clone();
            old.address.name = "retired-worker".into();
            old.id = format!("id:{}", old.address);
            s.resources.push(old);
        }
    });
    snapshot_plan("scenario_orphan", &p);
    assert!(p.render().contains("# no longer in the spec"));
}

#[test]
fn no_change_renders_the_same_in_every_format() {
    let g = dev();
    let p = compute("dev", Some(&g), &converged(&g)).unwrap();
    let doc = PlanDoc::new(&p);
    assert!(doc.is_empty() && doc.changes.is_empty());
    assert!(markdown::render(&doc).contains("No changes."));
}

#[test]
fn a_saved_plan_goes_stale_naming_what_changed_and_never_holds_the_key() {
    use crate::planfile::{Basis, PlanFile};
    let g = dev();
    let seen = converged(&g);
    let spec = b"the spec";
    let basis = |observed| Basis {
        spec_bytes: spec,
        region: "us-east-1",
        graph: &g,
        observed,
    };
    let plan_of = |s: &ObservedState| PlanDoc::new(&compute("dev", Some(&g), s).unwrap());
    let file = PlanFile::new("stacks/dev.toml", &basis(&seen), plan_of(&seen));
    let bytes = file.to_bytes();
    assert!(!String::from_utf8_lossy(&bytes).contains("pnu_"));
    let file = PlanFile::parse(&bytes).unwrap().unwrap();
    assert_eq!(
        file.stale(&basis(&seen), &plan_of(&seen)),
        Vec::<String>::new()
    );

    let mut drifted = seen.clone();
    observed_mut(&mut drifted, "log_group.workers")
        .attrs
        .insert("retention_in_days".into(), json!(7));
    observed_mut(&mut drifted, "secret.api_key").sensitive =
        Some(SecretValue::new("pnu_other".into()));
    drifted
        .resources
        .retain(|o| o.address != a("ecs_cluster.main"));
    let stale = file.stale(&basis(&drifted), &plan_of(&drifted));
    assert_eq!(
        stale,
        [
            "AWS resources changed since the plan:",
            "  ecs_cluster.main: gone (id:ecs_cluster.main)",
            "  log_group.workers: retention_in_days changed",
            "  secret.api_key: value changed",
        ]
    );

    let other = b"the spec, edited";
    let edited = Basis {
        spec_bytes: other,
        ..basis(&seen)
    };
    assert_eq!(
        file.stale(&edited, &plan_of(&seen)),
        ["spec stacks/dev.toml: the file changed"]
    );
    let rotated = dev_with_key("pnu_rotated");
    let new_key = Basis {
        graph: &rotated,
        ..basis(&seen)
    };
    let stale = file.stale(&new_key, &plan_of(&seen));
    assert_eq!(
        stale,
        [
            "the spec's inputs (environment variables, the API key) changed",
            "  desired secret.api_key: value changed",
        ]
    );
    assert_eq!(PlanFile::parse(b"[stack]\nname = \"x\"\n").unwrap(), None);
    assert!(PlanFile::parse(b"{\"format\": \"other\"}").is_err());
}

#[test]
fn drift_is_told_apart_from_a_spec_change() {
    let g = dev();
    let mut seen = converged(&g);
    observed_mut(&mut seen, "log_group.workers")
        .attrs
        .insert("retention_in_days".into(), json!(7));
    let drifted = compute("dev", Some(&g), &seen).unwrap();
    let reason = |p: &Plan, addr: &str| {
        p.changes
            .iter()
            .find(|c| c.address == a(addr))
            .unwrap()
            .reason
            .clone()
    };
    assert_eq!(
        reason(&drifted, "log_group.workers").as_deref(),
        Some("changed outside prefect-ecs")
    );

    // The same difference, because the spec asks for another value: no drift.
    let mut spec = load("dev.toml");
    spec.logs.retention_days = 90;
    let changed = build(&spec, "us-east-1", key(), Some(&template())).unwrap();
    let p = compute("dev", Some(&changed), &converged(&g)).unwrap();
    let c = p
        .changes
        .iter()
        .find(|c| c.address == a("log_group.workers"))
        .unwrap();
    assert_eq!((c.action, c.reason.as_deref()), (Action::Update, None));
}

#[test]
fn the_services_a_plan_redeploys_are_the_ones_whose_tasks_it_replaces() {
    let g = dev();
    assert_eq!(
        compute("dev", Some(&g), &ObservedState::default())
            .unwrap()
            .redeployed_services(),
        BTreeSet::new(),
        "a new service replaces no task"
    );
    let p = scenario(|s| {
        observed_mut(s, "ecs_task_definition.dev-worker")
            .attrs
            .insert("cpu".into(), json!("1024"));
    });
    assert_eq!(
        p.redeployed_services(),
        BTreeSet::from(["dev-worker".to_owned()])
    );
    let p = scenario(|s| {
        observed_mut(s, "log_group.workers")
            .attrs
            .insert("retention_in_days".into(), json!(7));
    });
    assert_eq!(p.redeployed_services(), BTreeSet::new());
}

#[test]
fn an_adopted_pool_stays_adopted_when_the_spec_stops_saying_so() {
    let g = dev();
    let mut seen = converged(&g);
    let pool = observed_mut(&mut seen, "prefect_work_pool.ecs-work-pool");
    pool.attrs.get_mut("tags").unwrap()[crate::model::TAG_ADOPTED] = json!("true");
    // The spec (dev.toml) does not adopt its pool: the plan keeps the mark, changes nothing.
    let p = compute("dev", Some(&g), &seen).unwrap();
    let change = p
        .changes
        .iter()
        .find(|c| c.address == a("prefect_work_pool.ecs-work-pool"))
        .unwrap();
    assert_eq!(change.action, Action::NoOp, "{:?}", change.diffs);
    assert_eq!(
        change.planned["tags"][crate::model::TAG_ADOPTED],
        json!("true")
    );
    // And destroy leaves it.
    let destroy = compute("dev", None, &seen).unwrap();
    assert!(
        !actions(&destroy).contains_key("prefect_work_pool.ecs-work-pool"),
        "{:?}",
        actions(&destroy)
    );
}

/// Issue 13: a secret under a customer key; the execution role may decrypt with that key
/// through Secrets Manager only, and `verify` proves both halves.
#[test]
fn a_customer_key_is_usable_through_secrets_manager_only() {
    const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let mut spec = load("dev.toml");
    spec.secret.kms_key_id = Some(KEY.into());
    let g = build(&spec, "us-east-1", key(), Some(&template())).unwrap();
    assert_eq!(
        g.get(&a("secret.api_key")).unwrap().attrs["kms_key_id"],
        KEY
    );
    let document = &g.get(&a("iam_role_policy.execution")).unwrap().attrs["document"];
    let decrypt = crate::policy::Request::new("kms:Decrypt", KEY);
    let via = |service: &str| decrypt.clone().with("kms:ViaService", service);
    assert!(crate::policy::allows(
        document,
        &via("secretsmanager.us-east-1.amazonaws.com")
    ));
    assert!(!crate::policy::allows(document, &decrypt));
    assert!(!crate::policy::allows(
        document,
        &via("s3.us-east-1.amazonaws.com")
    ));
    let other = "arn:aws:kms:us-east-1:123456789012:key/other";
    assert!(!crate::policy::allows(
        document,
        &crate::policy::Request::new("kms:Decrypt", other)
            .with("kms:ViaService", "secretsmanager.us-east-1.amazonaws.com")
    ));
    assert!(crate::verify::worker_permissions(&g).is_ok());

    // Without the condition, or without the statement, verify says what is wrong.
    let edited = |edit: &dyn Fn(&mut Vec<serde_json::Value>)| {
        let resources: Vec<Desired> = g
            .resources()
            .cloned()
            .map(|mut d| {
                if d.address == a("iam_role_policy.execution") {
                    edit(
                        d.attrs.get_mut("document").unwrap()["Statement"]
                            .as_array_mut()
                            .unwrap(),
                    );
                }
                d
            })
            .collect();
        crate::verify::worker_permissions(&StackGraph::from_resources(resources).unwrap())
            .unwrap_err()
    };
    let err = edited(&|s| s.retain(|s| s["Action"] != json!(["kms:Decrypt"])));
    assert!(
        err.contains(&format!("kms:Decrypt on {KEY} through Secrets Manager")),
        "{err}"
    );
    let err = edited(&|s| {
        for s in s.iter_mut() {
            s.as_object_mut().unwrap().remove("Condition");
        }
    });
    assert!(err.contains("is not limited to Secrets Manager"), "{err}");
    // With no key the policy is what it was: the secret, nothing else.
    let plain = &dev();
    let document = &plain.get(&a("iam_role_policy.execution")).unwrap().attrs["document"];
    assert_eq!(document["Statement"].as_array().unwrap().len(), 1);
}

#[test]
fn verify_names_every_missing_worker_permission() {
    let g = dev();
    assert!(crate::verify::worker_permissions(&g).is_ok());
    let resources: Vec<Desired> = g
        .resources()
        .cloned()
        .map(|mut d| {
            if d.address == a("iam_role_policy.task") {
                let statements = d.attrs.get_mut("document").unwrap()["Statement"]
                    .as_array_mut()
                    .unwrap();
                statements.retain(|s| s["Action"] != json!(["iam:PassRole"]));
                for s in statements {
                    s["Action"]
                        .as_array_mut()
                        .unwrap()
                        .retain(|x| x != "ecs:RunTask");
                }
            }
            if d.address == a("iam_role_policy.execution") {
                d.attrs.get_mut("document").unwrap()["Statement"] = json!([]);
            }
            d
        })
        .collect();
    let err = crate::verify::worker_permissions(&StackGraph::from_resources(resources).unwrap())
        .unwrap_err();
    for missing in [
        "worker task role: ecs:RunTask",
        "worker task role: iam:PassRole on iam_role.execution",
        "worker task role: iam:PassRole on iam_role.flow_run",
        "execution role: secretsmanager:GetSecretValue on the secret",
    ] {
        assert!(err.contains(missing), "{missing}: {err}");
    }
}

/// The pool's template as the graph fills it, for a spec with the given `[prefect]` table.
fn pool_template_for(prefect: &str) -> serde_json::Value {
    let source = format!(
        "[stack]\nname = \"tpl\"\n\n{prefect}\n[[worker]]\nname = \"w\"\nwork_pool = \"pool\"\n"
    );
    let env = |_: &str| None;
    let spec = spec::parse(&source, Path::new("tpl.toml"), &env, Some("us-east-1"))
        .unwrap_or_else(|e| panic!("{}", spec::render_plain(&e)));
    let g = build(&spec, "us-east-1", key(), Some(&template())).unwrap();
    g.get(&a("prefect_work_pool.pool")).unwrap().attrs["base_job_template"].clone()
}

#[test]
fn the_pool_template_points_flow_runs_at_the_stack_and_its_secret() {
    let cloud = "[prefect]\napi_url = \"https://api.prefect.cloud/api/accounts/9b5d7c4e-1f2a-4b3c-8d9e-0a1b2c3d4e5f/workspaces/3c2b1a09-8e7d-4c6b-9a5f-4e3d2c1b0a99\"\n";
    let t = pool_template_for(cloud);
    let default = |var: &str| t["variables"]["properties"][var]["default"].clone();
    assert_eq!(default("cluster"), reference(&a("ecs_cluster.main"), "arn"));
    assert_eq!(default("vpc_id"), reference(&a("vpc.main"), "id"));
    assert_eq!(
        default("network_configuration"),
        json!({
            "subnets": (0..3).map(|i| reference(&a(&format!("subnet.private[{i}]")), "id")).collect::<Vec<_>>(),
            "securityGroups": [reference(&a("security_group.worker"), "id")],
            "assignPublicIp": "DISABLED",
        })
    );
    assert_eq!(
        default("execution_role_arn"),
        reference(&a("iam_role.execution"), "arn")
    );
    assert_eq!(
        default("task_role_arn"),
        reference(&a("iam_role.flow_run"), "arn")
    );
    assert_eq!(default("launch_type"), json!("FARGATE"));
    assert_eq!(default("configure_cloudwatch_logs"), json!(true));
    assert_eq!(
        default("cloudwatch_logs_options")["awslogs-group"],
        reference(&a("log_group.workers"), "name")
    );
    // The served template predates the secret-ARN variables: the graph declares them, and
    // the API key reaches flow runs only as a reference to the stack's secret.
    assert_eq!(
        default("prefect_api_key_secret_arn"),
        reference(&a("secret.api_key"), "arn")
    );
    assert_eq!(default("prefect_api_auth_string_secret_arn"), json!(null));
    for var in [
        "prefect_api_key_secret_arn",
        "prefect_api_auth_string_secret_arn",
    ] {
        assert_eq!(
            t["job_configuration"][var],
            json!(format!("{{{{ {var} }}}}")),
            "{var} reaches the worker's job configuration"
        );
    }

    let auth = pool_template_for(
        "[prefect]\napi_url = \"http://prefect.internal:4200/api\"\nauth_string_env = \"PREFECT_API_AUTH_STRING\"\n",
    );
    let default = |var: &str| auth["variables"]["properties"][var]["default"].clone();
    assert_eq!(
        default("prefect_api_auth_string_secret_arn"),
        reference(&a("secret.api_key"), "arn")
    );
    assert_eq!(default("prefect_api_key_secret_arn"), json!(null));

    // A server without auth: no secret, so neither variable names one.
    let open = pool_template_for("[prefect]\napi_url = \"http://prefect.internal:4200/api\"\n");
    for var in [
        "prefect_api_key_secret_arn",
        "prefect_api_auth_string_secret_arn",
    ] {
        assert_eq!(open["variables"]["properties"][var]["default"], json!(null));
    }
}

/// Issue 10, defect 1: with two resources at one address, the plan kept the second and also
/// deleted it; destroy deleted the second twice and left the first.
#[test]
fn of_two_resources_with_one_address_the_first_is_kept_and_the_other_deleted_once() {
    let g = dev();
    let mut seen = converged(&g);
    let first = observed_mut(&mut seen, "vpc.main").id.clone();
    let mut dup = observed_mut(&mut seen, "vpc.main").clone();
    dup.id = "vpc-duplicate".into();
    dup.attrs.insert("cidr_block".into(), json!("10.99.0.0/16"));
    seen.resources.push(dup);

    let p = compute("dev", Some(&g), &seen).unwrap();
    let at_vpc: Vec<(Action, &str)> = p
        .changes
        .iter()
        .filter(|c| c.address == a("vpc.main"))
        .map(|c| (c.action, c.observed.as_ref().unwrap().id.as_str()))
        .collect();
    assert!(
        at_vpc.contains(&(Action::NoOp, first.as_str())),
        "the first VPC is the stack's, unchanged: {at_vpc:?}"
    );
    assert!(
        at_vpc.contains(&(Action::Delete, "vpc-duplicate")),
        "{at_vpc:?}"
    );
    assert_eq!(at_vpc.len(), 2, "{at_vpc:?}");

    let destroy = compute("dev", None, &seen).unwrap();
    let mut deleted: Vec<&str> = destroy
        .changes
        .iter()
        .filter(|c| c.address == a("vpc.main"))
        .map(|c| c.observed.as_ref().unwrap().id.as_str())
        .collect();
    deleted.sort_unstable();
    assert_eq!(deleted, [first.as_str(), "vpc-duplicate"]);
    let ids: BTreeSet<&str> = destroy
        .changes
        .iter()
        .map(|c| c.observed.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(ids.len(), destroy.changes.len(), "nothing is deleted twice");
    assert_eq!(
        destroy.changes.len(),
        seen.resources.len(),
        "nothing is left"
    );
}

/// Issue 10, defect 2: destroy ordered deletions only by the ids discovery sees in each
/// resource, so the orderings no id shows (the service after the private routes and the role
/// policies) were missing and the NAT routes went while the service still drained. Here the
/// observed `uses` hold only referenced ids, as real discovery reports them.
#[test]
fn destroy_follows_the_specs_graph_where_no_id_shows_the_order() {
    let g = dev();
    let mut seen = converged(&g);
    for o in &mut seen.resources {
        let d = g.get(&o.address).unwrap();
        let mut referenced = Vec::new();
        for v in d.attrs.values() {
            crate::model::references_in(v, &mut referenced);
        }
        o.uses = referenced.iter().map(|a| format!("id:{a}")).collect();
    }
    let svc = a("ecs_service.dev-worker");
    let hidden: Vec<&Address> = g.get(&svc).unwrap().extra_deps.iter().collect();
    assert!(
        hidden.contains(&&a("route_table.private[0]"))
            && hidden.contains(&&a("iam_role_policy.task")),
        "the dev stack has orderings no id shows: {hidden:?}"
    );
    let p = crate::plan::destroy("dev", &g, &seen).unwrap();
    let (steps, deps) = schedule(&p);
    let step_of = |addr: &Address| steps.iter().position(|s| &s.address == addr).unwrap();
    for e in g.graph.edge_indices() {
        let (dep, user) = g.graph.edge_endpoints(e).unwrap();
        let (d, u) = (
            step_of(&g.graph[dep].address),
            step_of(&g.graph[user].address),
        );
        assert!(
            deps[d].contains(&u),
            "{} must wait for {}",
            steps[d].address,
            steps[u].address
        );
    }
}

/// `ignore_changes`: a difference in an ignored attribute is no change; an update for
/// another reason sends the value AWS has (auto scaling's desired count stays), and the plan
/// says which attributes the resource ignores.
#[test]
fn an_ignored_attribute_is_never_a_change_and_an_update_keeps_what_aws_has() {
    let mut g = dev();
    let svc = a("ecs_service.dev-worker");
    let idx = g
        .graph
        .node_indices()
        .find(|&i| g.graph[i].address == svc)
        .unwrap();
    g.graph[idx].ignore_changes = vec!["desired_count".into()];
    let mut seen = converged(&g);
    observed_mut(&mut seen, "ecs_service.dev-worker")
        .attrs
        .insert("desired_count".into(), json!(3));
    let p = compute("dev", Some(&g), &seen).unwrap();
    assert!(p.is_empty(), "{}", p.render());

    // Another difference: an update, without desired_count in its diffs or its call.
    observed_mut(&mut seen, "ecs_service.dev-worker")
        .attrs
        .insert(
            "deployment_circuit_breaker".into(),
            json!({"enable": false, "rollback": false}),
        );
    let p = compute("dev", Some(&g), &seen).unwrap();
    let change = p.changes.iter().find(|c| c.address == svc).unwrap();
    assert_eq!(change.action, Action::Update);
    assert!(change.diffs.iter().all(|d| d.attr != "desired_count"));
    let text = p.render();
    assert!(
        text.contains("# ignore_changes: desired_count (set on create, never diffed after)"),
        "{text}"
    );

    struct Updates(RefCell<Vec<Attrs>>);
    impl Provider for Updates {
        async fn create(
            &self,
            a: &Address,
            _: &Attrs,
            _: Option<&SecretValue>,
        ) -> Result<Outputs, ProviderError> {
            Err(ProviderError(format!("unexpected create of {a}")))
        }
        async fn update(
            &self,
            _: &Address,
            attrs: &Attrs,
            _: Option<&SecretValue>,
            o: &Observed,
        ) -> Result<Outputs, ProviderError> {
            self.0.borrow_mut().push(attrs.clone());
            Ok(o.outputs.clone())
        }
        async fn delete(&self, o: &Observed) -> Result<(), ProviderError> {
            Err(ProviderError(format!("unexpected delete of {}", o.address)))
        }
    }
    let updates = Updates(RefCell::new(Vec::new()));
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(execute(&p, &updates, 4, |_| {}));
    assert!(report.ok(), "{report:?}");
    let sent = updates.0.borrow();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["desired_count"],
        json!(3),
        "auto scaling's count is kept"
    );
    assert_eq!(
        sent[0]["deployment_circuit_breaker"],
        json!({"enable": true, "rollback": true})
    );
}

/// Every attribute the graph sets is one its kind declares (`kinds/`): an undeclared one
/// would be diffed without its shape (a policy compared as text, a tag map with AWS's keys)
/// and never written by the provider, which reads only declared attributes.
#[test]
fn the_graph_sets_only_attributes_its_kinds_declare() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stacks");
    let mut stacks: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    stacks.sort();
    assert!(stacks.len() >= 2, "{stacks:?}");
    let mut kinds = std::collections::BTreeSet::new();
    for (name, spec) in stacks.iter().flat_map(|name| load_all(name)) {
        let g = build(&spec, "us-east-1", key(), Some(&template())).unwrap();
        for d in g.resources() {
            kinds.insert(d.address.kind);
            for attr in d.attrs.keys() {
                assert!(
                    d.address.kind.def().attr(attr).is_some(),
                    "{name}: {} sets {attr}, which kinds/{}.rs does not declare",
                    d.address,
                    d.address.kind.as_str()
                );
            }
        }
    }
    // The stacks between them use every kind, so every kind's declarations are checked.
    assert_eq!(kinds.len(), Kind::ALL.len(), "{kinds:?}");
}

#[test]
fn kind_names_are_unique_and_parse_back() {
    for &k in Kind::ALL {
        assert_eq!(Kind::parse(k.as_str()), Some(k));
        let mut names: Vec<&str> = k.def().attrs.iter().map(|a| a.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(
            names.len(),
            k.def().attrs.len(),
            "{} repeats an attribute",
            k.as_str()
        );
    }
}

/// Issue 11, item 5: every call the real prefect-aws worker makes (the integration test
/// `real_worker` records them) is allowed by the worker's policy in its own stack, and the
/// same call on another cluster, log group or role, or for another service, is denied.
#[test]
fn the_worker_policy_allows_the_workers_calls_in_its_stack_and_nowhere_else() {
    use crate::policy::{Request, allows};
    const ACCOUNT: &str = "123456789012";
    let cluster = format!("arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/dev-cluster");
    let group = format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/prefect-ecs/dev");
    let role = |name: &str| format!("arn:aws:iam::{ACCOUNT}:role/{name}");
    let queue = format!("arn:aws:sqs:us-east-1:{ACCOUNT}:dev-ecs-events");
    let g = dev();
    let lookup = |a: &Address, o: &str| {
        Some(match (a.kind, o) {
            (Kind::EcsCluster, "arn") => cluster.clone(),
            (Kind::LogGroup, crate::graph::LOG_STREAMS_ARN) => format!("{group}:log-stream:*"),
            (Kind::IamRole, "arn") => role(&a.name),
            (Kind::SqsQueue, "arn") => queue.clone(),
            _ => format!("{o}:{a}"),
        })
    };
    let doc = resolve(
        &g.get(&a("iam_role_policy.task")).unwrap().attrs["document"],
        &lookup,
    );
    let task = format!("arn:aws:ecs:us-east-1:{ACCOUNT}:task/dev-cluster/0123");
    let td = format!("arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/dev_ecs-work-pool:1");
    let stream = format!("{group}:log-stream:flow-run/prefect/0123");
    let in_cluster =
        |action: &str, resource: &str| Request::new(action, resource).with("ecs:cluster", &cluster);
    let pass = |r: &str| {
        Request::new("iam:PassRole", &role(r))
            .with("iam:PassedToService", "ecs-tasks.amazonaws.com")
    };
    let worker_calls = [
        Request::new("ec2:DescribeVpcs", "*"),
        Request::new("ec2:DescribeSubnets", "*"),
        Request::new("ecs:RegisterTaskDefinition", "*"),
        Request::new("ecs:DescribeTaskDefinition", "*"),
        Request::new("ecs:DeregisterTaskDefinition", "*"),
        Request::new("ecs:TagResource", &td).with("ecs:CreateAction", "RegisterTaskDefinition"),
        in_cluster("ecs:RunTask", &td),
        Request::new("ecs:TagResource", &task).with("ecs:CreateAction", "RunTask"),
        in_cluster("ecs:DescribeTasks", &task),
        in_cluster("ecs:StopTask", &task),
        Request::new("logs:GetLogEvents", &stream),
        pass("execution"),
        pass("flow_run"),
        // The observer (prefect_aws/observers/ecs.py): the stack's queue.
        Request::new("sqs:GetQueueUrl", &queue),
        Request::new("sqs:ReceiveMessage", &queue),
        Request::new("sqs:DeleteMessage", &queue),
        Request::new("sqs:ChangeMessageVisibility", &queue),
    ];
    for r in &worker_calls {
        assert!(allows(&doc, r), "the worker's policy denies {r:?}");
    }
    let other_cluster = format!("arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/prod-cluster");
    let elsewhere = [
        Request::new("ecs:RunTask", &td).with("ecs:cluster", &other_cluster),
        Request::new("ecs:StopTask", &task).with("ecs:cluster", &other_cluster),
        Request::new("ecs:DescribeTasks", &task).with("ecs:cluster", &other_cluster),
        Request::new("ecs:TagResource", &task).with("ecs:CreateAction", "CreateService"),
        Request::new(
            "logs:GetLogEvents",
            &format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/other:log-stream:s"),
        ),
        Request::new("logs:PutLogEvents", &stream),
        pass("admin"),
        Request::new("iam:PassRole", &role("flow_run"))
            .with("iam:PassedToService", "ec2.amazonaws.com"),
        Request::new("ecs:DeleteCluster", &cluster),
        Request::new(
            "sqs:ReceiveMessage",
            &format!("arn:aws:sqs:us-east-1:{ACCOUNT}:prod-ecs-events"),
        ),
        Request::new("sqs:SendMessage", &queue),
        Request::new("sqs:DeleteQueue", &queue),
        Request::new("secretsmanager:GetSecretValue", "*"),
    ];
    for r in &elsewhere {
        assert!(!allows(&doc, r), "the worker's policy allows {r:?}");
    }
}

/// Issue 15, bug 1: a saved plan that replaces a task definition (a new image) was always
/// refused as out of date, naming the service twice; only creation was covered.
#[test]
fn a_saved_plan_of_an_update_a_replacement_or_a_delete_is_not_stale_when_nothing_changed() {
    use crate::planfile::{Basis, PlanFile};
    let before = dev();
    let mut spec = load("dev.toml");
    spec.workers[0].image = "prefecthq/prefect:3-python3.12".into();
    let new_image = build(&spec, "us-east-1", key(), Some(&template())).unwrap();
    let mut spec = load("dev.toml");
    spec.workers[0].desired_count = 3;
    let scaled = build(&spec, "us-east-1", key(), Some(&template())).unwrap();
    let seen = converged(&before);
    let mut orphaned = seen.clone();
    let mut old = observed_mut(&mut orphaned, "log_group.workers").clone();
    old.address.name = "retired".into();
    old.id = "id:log_group.retired".into();
    orphaned.resources.push(old);
    for (what, graph, observed) in [
        ("replace", &new_image, &seen),
        ("update", &scaled, &seen),
        ("delete", &before, &orphaned),
    ] {
        let basis = Basis {
            spec_bytes: b"the spec",
            region: "us-east-1",
            graph,
            observed,
        };
        let plan_of = || PlanDoc::new(&compute("dev", Some(graph), observed).unwrap());
        assert!(!plan_of().is_empty(), "{what}: the plan has changes");
        let file = PlanFile::new("stacks/dev.toml", &basis, plan_of());
        let file = PlanFile::parse(&file.to_bytes()).unwrap().unwrap();
        assert_eq!(
            file.stale(&basis, &plan_of()),
            Vec::<String>::new(),
            "{what}"
        );
        // `show` renders the saved plan exactly as `plan` did.
        let style = crate::render::human::Style { color: false };
        assert_eq!(
            crate::render::human::render(&file.plan, style),
            crate::render::human::render(&plan_of(), style),
            "{what}"
        );
    }
}

/// Issue 15, bug 3: one Ctrl-C during a wait did not end the wait; the run went on until the
/// wait's own end. A poll's pause now ends at the stop; calls in flight still finish.
#[test]
fn a_stop_ends_the_waits_at_once_and_says_what_is_in_flight() {
    let g = dev();
    let p = compute("dev", Some(&g), &ObservedState::default()).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let fake = Fake {
        idle: Some(std::time::Duration::from_secs(3000)),
        abandonable: true,
        interrupt_after: Some(("vpc.main".into(), std::sync::Arc::clone(&stop))),
        ..Default::default()
    };
    let stopping = RefCell::new(Vec::new());
    let took = RefCell::new(std::time::Duration::ZERO);
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(async {
            let t0 = tokio::time::Instant::now();
            let run = crate::apply::execute_until(
                &p,
                &fake,
                10,
                |e| {
                    if let crate::apply::Event::Stopping { in_flight } = e {
                        stopping.borrow_mut().push(in_flight);
                    }
                },
                &stop,
            );
            let report = tokio::time::timeout(std::time::Duration::from_secs(36_000), run)
                .await
                .expect("the run ended");
            // On the paused clock: measured inside the runtime.
            *took.borrow_mut() = t0.elapsed();
            report
        });
    let took = *took.borrow();
    assert!(report.interrupted);
    assert_eq!(
        stopping.borrow().len(),
        1,
        "said once: {:?}",
        stopping.borrow()
    );
    // The VPC waits 3000 s (paused clock) before its second call: the stop ends that wait.
    assert!(
        took < std::time::Duration::from_secs(3000),
        "the run waited out a pause after the stop: {took:?}"
    );
    assert!(
        report
            .failed
            .iter()
            .any(|(_, e)| e.to_string().contains("stopped waiting")),
        "{:?}",
        report.failed
    );
}

/// Issue 15, bug 4: a new API key reached Secrets Manager, but the running workers kept the
/// old one (ECS reads `secrets` when a task starts). The services reading it are redeployed.
#[test]
fn a_rotated_secret_redeploys_the_services_that_read_it() {
    let before = dev();
    let seen = converged(&before);
    let rotated = dev_with_key("pnu_rotated");
    let p = compute("dev", Some(&rotated), &seen).unwrap();
    let change = |addr: &str| p.changes.iter().find(|c| c.address == a(addr)).unwrap();
    assert_eq!(change("secret.api_key").action, Action::Update);
    let service = change("ecs_service.dev-worker");
    assert_eq!(service.action, Action::Update);
    assert_eq!(
        service.reason.as_deref(),
        Some("the secret it reads changed")
    );
    assert_eq!(
        service
            .desired
            .as_ref()
            .unwrap()
            .attrs
            .get(crate::kinds::ecs_service::FORCE_NEW_DEPLOYMENT),
        Some(&json!(true))
    );
    assert_eq!(
        change("ecs_task_definition.dev-worker").action,
        Action::NoOp
    );
    assert!(p.redeployed_services().contains("dev-worker"));
    let text = p.render();
    assert!(text.contains("# the secret it reads changed"), "{text}");
    assert!(!text.contains("pnu_rotated"), "{text}");
    // The service updates after the secret has its new value.
    let (steps, deps) = crate::apply::schedule(&p);
    let idx = |addr: &str| steps.iter().position(|s| s.address == a(addr)).unwrap();
    let service_step = idx("ecs_service.dev-worker");
    let mut stack = deps[service_step].clone();
    let mut visited = std::collections::BTreeSet::new();
    let mut seen_secret = false;
    while let Some(d) = stack.pop() {
        if !visited.insert(d) {
            continue;
        }
        seen_secret |= steps[d].address == a("secret.api_key");
        stack.extend(deps[d].iter().copied());
    }
    assert!(
        seen_secret,
        "the redeploy does not wait for the new secret value"
    );
    // Unchanged key: nothing to redeploy.
    let same = compute("dev", Some(&before), &seen).unwrap();
    assert!(same.changes.iter().all(|c| c.action == Action::NoOp));
}

/// Issue 15, item 10: one user tag added changes every resource's spec digest too; the human
/// and Markdown plans show the user's tag only, the JSON plan everything.
#[test]
fn internal_tags_are_shown_only_in_json() {
    let old = dev();
    let mut spec = load("dev.toml");
    spec.tags.insert("team".into(), "data".into());
    let new = build(&spec, "us-east-1", key(), Some(&template())).unwrap();
    let p = compute("dev", Some(&new), &converged(&old)).unwrap();
    let doc = crate::render::PlanDoc::new(&p);
    let json = serde_json::to_string(&doc).unwrap();
    assert!(json.contains(crate::model::TAG_SPEC), "{json}");
    for text in [p.render(), crate::render::markdown::render(&doc)] {
        assert!(!text.contains("prefect-ecs:"), "{text}");
        assert!(text.contains(r#"tags.team: "data""#), "{text}");
    }

    // Only the digest differs (an edit made outside): said in one line, not hidden silently.
    let p = scenario(|s| {
        let tags = observed_mut(s, "log_group.workers")
            .attrs
            .get_mut("tags")
            .unwrap();
        tags[crate::model::TAG_SPEC] = json!("0000000000000000");
    });
    let text = p.render();
    assert!(text.contains("~ log_group.workers"), "{text}");
    assert!(
        text.contains("# only prefect-ecs's own tags change"),
        "{text}"
    );
    assert!(!text.contains("prefect-ecs:spec"), "{text}");
}

fn selected(
    g: &StackGraph,
    seen: &ObservedState,
    targets: &[&str],
    replace: &[&str],
) -> Result<Plan, PlanError> {
    let selection = crate::plan::Selection {
        targets: targets.iter().map(|t| t.to_string()).collect(),
        replace: replace.iter().map(|t| t.to_string()).collect(),
    };
    crate::plan::compute_selected("prod", Some(g), seen, &selection)
}

fn prod() -> StackGraph {
    build(&load("prod.toml"), "us-east-1", key(), Some(&template())).unwrap()
}

/// Issue 15, item 13: `--target` keeps the resource and what it needs, and leaves the rest
/// out, counted and said.
#[test]
fn a_target_plans_the_resource_and_what_it_needs_and_counts_the_rest() {
    let g = prod();
    let p = selected(&g, &ObservedState::default(), &["ecs_service.etl"], &[]).unwrap();
    let kept: BTreeSet<String> = p.changes.iter().map(|c| c.address.to_string()).collect();
    assert!(kept.contains("ecs_service.etl"), "{kept:?}");
    // What it needs, transitively: its task definition, the roles, the VPC under its subnets.
    for need in [
        "ecs_task_definition.etl",
        "iam_role.execution",
        "vpc.main",
        "ecs_cluster.main",
    ] {
        assert!(kept.contains(need), "{need} missing from {kept:?}");
    }
    // The other worker is not needed by it.
    assert!(!kept.iter().any(|a| a.ends_with(".ml")), "{kept:?}");
    let whole = compute("prod", Some(&g), &ObservedState::default()).unwrap();
    assert_eq!(p.left_out, whole.changes.len() - p.changes.len());
    assert!(p.left_out > 0);
    let text = p.render();
    assert!(
        text.contains("Targeting is in effect: only ecs_service.etl")
            && text.contains(&format!("{} other changes are left out", p.left_out)),
        "{text}"
    );
    let json = serde_json::to_value(PlanDoc::new(&p)).unwrap();
    assert_eq!(json["targets"], json!(["ecs_service.etl"]));
    assert_eq!(json["left_out"], json!(p.left_out));
    // A whole plan's JSON has neither field.
    let json = serde_json::to_value(PlanDoc::new(&whole)).unwrap();
    assert!(json.get("targets").is_none() && json.get("left_out").is_none());
}

/// A target that drifted alone: only its change, the other drift left for a whole plan.
#[test]
fn a_target_leaves_other_drift_alone() {
    let g = prod();
    let mut seen = converged(&g);
    for svc in ["ecs_service.etl", "ecs_service.ml"] {
        observed_mut(&mut seen, svc)
            .attrs
            .insert("desired_count".into(), json!(7));
    }
    let p = selected(&g, &seen, &["ecs_service.ml"], &[]).unwrap();
    assert_eq!(
        actions(&p),
        BTreeMap::from([("ecs_service.ml".into(), Action::Update)])
    );
    assert_eq!(p.left_out, 1);
    assert!(p.render().contains("1 other change is left out"));
}

/// `--replace` replaces what the spec and AWS agree on, and what refers to its id follows.
#[test]
fn a_replace_is_planned_with_its_reason_and_its_users_follow() {
    let g = prod();
    let seen = converged(&g);
    let p = selected(&g, &seen, &[], &["ecs_task_definition.etl"]).unwrap();
    let acts = actions(&p);
    assert_eq!(acts["ecs_task_definition.etl"], Action::Replace);
    // The service runs the new revision: updated to it.
    assert_eq!(acts["ecs_service.etl"], Action::Update);
    assert!(!acts.contains_key("ecs_service.ml"), "{acts:?}");
    let td = p
        .changes
        .iter()
        .find(|c| c.address == a("ecs_task_definition.etl"))
        .unwrap();
    assert_eq!(
        td.reason.as_deref(),
        Some("replaced as requested (--replace)")
    );
    let json = serde_json::to_value(PlanDoc::new(&p)).unwrap();
    assert_eq!(json["replace"], json!(["ecs_task_definition.etl"]));

    // With --target on the service only, the replaced cluster's other users come along:
    // AWS deletes no cluster with services in it.
    let p = selected(&g, &seen, &["ecs_service.etl"], &["ecs_cluster.main"]).unwrap();
    let acts = actions(&p);
    assert_eq!(acts["ecs_cluster.main"], Action::Replace);
    assert!(acts.contains_key("ecs_service.ml"), "{acts:?}");
}

/// An address the stack does not have is an error naming the closest one; a replacement of
/// what the plan deletes or of an adopted pool is refused.
#[test]
fn selections_the_stack_cannot_honour_are_refused_with_the_reason() {
    let g = prod();
    let mut seen = converged(&g);
    let err = selected(&g, &seen, &["ecs_service.elt"], &[]).unwrap_err();
    let text = format!("{err} {}", miette::Diagnostic::help(&err).unwrap());
    assert!(
        text.contains("--target ecs_service.elt: no resource of this stack has that address")
            && text.contains("did you mean ecs_service.etl?"),
        "{text}"
    );
    let err = selected(&g, &seen, &[], &["nonsense"]).unwrap_err();
    let text = format!("{err} {}", miette::Diagnostic::help(&err).unwrap());
    assert!(
        text.contains("--replace nonsense") && text.contains("graph SPEC"),
        "{text}"
    );

    let mut orphan = seen.resources[0].clone();
    orphan.address = a("ecs_service.gone");
    orphan.id = "id:gone".into();
    seen.resources.push(orphan);
    let err = selected(&g, &seen, &[], &["ecs_service.gone"]).unwrap_err();
    assert!(err.to_string().contains("not in the spec"), "{err}");
    // An orphan can be targeted: its deletion alone.
    let p = selected(&g, &seen, &["ecs_service.gone"], &[]).unwrap();
    assert_eq!(
        actions(&p),
        BTreeMap::from([("ecs_service.gone".into(), Action::Delete)])
    );

    let pool = seen
        .resources
        .iter_mut()
        .find(|o| o.address.kind == Kind::WorkPool)
        .unwrap();
    pool.attrs
        .get_mut("tags")
        .and_then(|t| t.as_object_mut())
        .unwrap()
        .insert(crate::model::TAG_ADOPTED.into(), json!("true"));
    let address = pool.address.to_string();
    let err = selected(&g, &seen, &[], &[&address]).unwrap_err();
    assert!(err.to_string().contains("adopted"), "{err}");
}

/// Issue 11, item 3: destroy's plan deregisters the flow runs' task definitions of the stack's
/// own pools, each once, and says why; an adopted pool's family is not the stack's to clean.
#[test]
fn destroy_removes_the_flow_runs_task_definitions_of_its_own_pools() {
    let spec = load("prod.toml");
    let families = crate::graph::flow_run_families(&spec);
    assert!(!families.is_empty());
    assert!(
        families
            .iter()
            .all(|(pool, family)| *family == format!("prod_{pool}")),
        "{families:?}"
    );
    let mut adopting = spec.clone();
    adopting.work_pools[0].adopt = true;
    let adopted = adopting.work_pools[0].name.clone();
    assert!(
        !crate::graph::flow_run_families(&adopting)
            .iter()
            .any(|(p, _)| *p == adopted)
    );

    let g = prod();
    let mut p = crate::plan::destroy("prod", &g, &converged(&g)).unwrap();
    let (pool, family) = families[0].clone();
    let arn = |r: u32| {
        (
            pool.clone(),
            format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{family}:{r}"),
        )
    };
    let before = p.changes.len();
    p.remove_flow_run_definitions(&[arn(1), arn(2), arn(2)]);
    assert_eq!(p.changes.len(), before + 2);
    let text = p.render();
    assert!(
        text.contains(&format!(
            "- ecs_task_definition.{family}:2  # registered by the worker for flow runs of pool {pool}"
        )),
        "{text}"
    );
    assert!(
        text.contains("log_group.workers  # destroy, with every log stream in it"),
        "{text}"
    );
    // Nothing waits for them: they are deleted in the first wave.
    let (steps, deps) = schedule(&p);
    for (s, d) in steps.iter().zip(&deps) {
        if s.address.name.starts_with(&family) {
            assert!(d.is_empty(), "{s:?} waits for {d:?}");
        }
    }
}

/// Issue 11, item 2: the cluster's task state changes reach a queue only the stack's rule may
/// send to, and each worker's observer is told that queue's name and region.
#[test]
fn task_state_changes_reach_the_queue_the_workers_observe() {
    use crate::policy::{Request, allows};
    let g = dev();
    let cluster = "arn:aws:ecs:us-east-1:123456789012:cluster/prefect-cluster";
    let queue = "arn:aws:sqs:us-east-1:123456789012:dev-ecs-events";
    let rule = "arn:aws:events:us-east-1:123456789012:rule/dev-ecs-task-events";
    let lookup = |a: &Address, o: &str| {
        Some(match (a.kind, o) {
            (Kind::EcsCluster, "arn") => cluster.to_owned(),
            (Kind::SqsQueue, "arn") => queue.to_owned(),
            (Kind::EventRule, "arn") => rule.to_owned(),
            _ => format!("{o}:{a}"),
        })
    };
    let attrs = |addr: &str| -> Attrs {
        g.get(&a(addr))
            .unwrap()
            .attrs
            .iter()
            .map(|(k, v)| (k.clone(), resolve(v, &lookup)))
            .collect()
    };
    let r = attrs("event_rule.task_events");
    assert_eq!(r["name"], json!("dev-ecs-task-events"));
    assert_eq!(r["target_arn"], json!(queue));
    assert_eq!(
        r["event_pattern"],
        json!({"source": ["aws.ecs"], "detail-type": ["ECS Task State Change"],
               "detail": {"clusterArn": [cluster]}})
    );
    assert_eq!(
        attrs("sqs_queue.task_events")["name"],
        json!("dev-ecs-events")
    );
    let p = attrs("sqs_queue_policy.task_events");
    let doc = &p["document"];
    assert_eq!(
        doc["Statement"][0]["Principal"],
        json!({"Service": "events.amazonaws.com"})
    );
    let send = |source: &str| Request::new("sqs:SendMessage", queue).with("aws:SourceArn", source);
    assert!(allows(doc, &send(rule)));
    assert!(!allows(
        doc,
        &send("arn:aws:events:us-east-1:123456789012:rule/other")
    ));
    assert!(!allows(
        doc,
        &Request::new("sqs:ReceiveMessage", queue).with("aws:SourceArn", rule)
    ));
    // The worker reads the queue the stack makes, and starts after it receives events.
    let svc = g.get(&a("ecs_service.dev-worker")).unwrap();
    for dep in ["sqs_queue_policy.task_events", "event_rule.task_events"] {
        assert!(
            svc.deps().contains(&a(dep)),
            "the worker does not wait for {dep}"
        );
    }
    let td = attrs("ecs_task_definition.dev-worker");
    let env = td["container"]["environment"].as_array().unwrap();
    let value = |name: &str| {
        env.iter()
            .find(|e| e["name"] == json!(name))
            .map(|e| e["value"].clone())
    };
    assert_eq!(
        value("PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_ENABLED"),
        Some(json!("true"))
    );
    assert_eq!(
        value("PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME"),
        Some(json!("dev-ecs-events"))
    );
    assert_eq!(
        value("PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_REGION"),
        Some(json!("us-east-1"))
    );
}

/// Issue 14: the monthly cost of each stack in `stacks/`, item by item.
#[test]
fn every_stack_cost_snapshot() {
    let prices = crate::cost::prices("us-east-1").unwrap();
    insta::glob!("../../../stacks", "*.toml", |path| {
        for (env, spec) in load_all(path.file_name().unwrap().to_str().unwrap()) {
            let g = build(&spec, "us-east-1", key(), Some(&template())).unwrap();
            insta::assert_snapshot!(
                format!("cost{env}"),
                crate::cost::of_graph(&g, &prices, &Default::default())
                    .render("us-east-1", &prices)
            );
        }
    });
}

/// Issue 14's worked example, by hand: one 0.5 vCPU / 1 GB x86 worker in us-east-1 is
/// 0.5 × 0.04048 × 730 + 1 × 0.004445 × 730 = $18.02 a month, one NAT gateway and its IPv4
/// address 0.045 × 730 + 0.005 × 730 = $36.50; per-AZ NAT adds two more of the latter.
#[test]
fn the_worked_example_costs_what_the_hand_says() {
    use crate::cost::{dollars, of_graph, of_observed, prices};
    let p = prices("us-east-1").unwrap();
    let g = dev();
    let e = of_graph(&g, &p, &Default::default());
    let of = |address: &str| -> f64 {
        e.lines
            .iter()
            .filter(|l| l.address == a(address))
            .map(|l| l.monthly)
            .sum()
    };
    let fargate = e
        .lines
        .iter()
        .find(|l| l.address == a("ecs_service.dev-worker") && l.what.contains("Fargate"))
        .unwrap();
    assert_eq!(dollars(fargate.monthly), "$18.02", "{fargate:?}");
    assert_eq!(
        dollars(of("nat_gateway.nat[0]") + of("eip.nat[0]")),
        "$36.50"
    );
    // The secret, the namespace's zone and the worker's Cloud Map instance.
    assert_eq!(dollars(of("secret.api_key")), "$0.40");
    assert_eq!(dollars(e.total()), "$55.52");
    // What exists in AWS is priced the same way: a converged stack costs what its spec says.
    let now = of_observed(&converged(&g), &p, &Default::default());
    assert_eq!(dollars(now.total()), dollars(e.total()));
    assert_eq!(
        dollars(of_observed(&ObservedState::default(), &p, &Default::default()).total()),
        "$0.00"
    );

    let mut spec = load("dev.toml");
    spec.network.nat = crate::spec::NatMode::PerAz;
    let per_az = build(&spec, "us-east-1", key(), Some(&template())).unwrap();
    let delta = of_graph(&per_az, &p, &Default::default()).total() - e.total();
    let zones = spec.network.zones.len() as f64;
    assert_eq!(dollars(delta), dollars((zones - 1.0) * 36.5));

    // Workers in public subnets pay for their tasks' addresses instead of a NAT.
    spec.network.nat = crate::spec::NatMode::None;
    spec.network.task_subnets = crate::spec::Tier::Public;
    let public = of_graph(
        &build(&spec, "us-east-1", key(), Some(&template())).unwrap(),
        &p,
        &Default::default(),
    );
    assert!(
        public
            .lines
            .iter()
            .any(|l| l.what == "1 task public IPv4 address(es)" && dollars(l.monthly) == "$3.65"),
        "{public:?}"
    );
    assert!(
        !public
            .lines
            .iter()
            .any(|l| l.address.kind == Kind::NatGateway)
    );

    // An interface endpoint costs an hour per zone it has an ENI in: 3 × 730 × $0.01.
    let mut spec = load("dev.toml");
    spec.network.endpoints.interface = vec!["logs".into()];
    let with = of_graph(
        &build(&spec, "us-east-1", key(), Some(&template())).unwrap(),
        &p,
        &Default::default(),
    );
    assert_eq!(dollars(with.total() - e.total()), "$21.90");
    assert!(with.lines.iter().any(|l| l.address == a("vpc_endpoint.s3")
        && l.what == "gateway endpoint: free"
        && l.monthly == 0.0));

    // A region the table does not hold has no prices, not zero ones.
    assert!(prices("ap-southeast-7").is_none());
}

/// Issue 14: every plan ends with the stack's monthly cost before and after, in each format;
/// a destroy shows what goes, a no-op plan the figure, a region without prices says so.
#[test]
fn plans_end_with_the_monthly_cost_before_and_after() {
    use crate::render::human::{self, Style};
    let g = dev();
    let create = compute("dev", Some(&g), &ObservedState::default()).unwrap();
    let doc = PlanDoc::new(&create).priced(&create, "us-east-1", &Default::default());
    let text = human::render(&doc, Style::default());
    let tail = text.split("Plan: ").nth(1).unwrap();
    assert!(
        tail.contains("Monthly cost in us-east-1: $0.00 now, $55.52 after (+$55.52)."),
        "{text}"
    );
    assert!(tail.contains("$32.85  nat_gateway.nat[0]"), "{text}");
    assert!(tail.contains("as of 2025-01-01"), "{text}");
    let json = serde_json::to_value(&doc).unwrap();
    assert_eq!(json["cost"]["after"], json!(55.52));
    assert_eq!(json["cost"]["before"], json!(0.0));
    assert!(markdown::render(&doc).contains("**Monthly cost in us-east-1: $0.00 now"));
    // A saved plan keeps it: `show` renders the same document.
    let back: PlanDoc = serde_json::from_value(json).unwrap();
    assert_eq!(back, doc);

    let seen = converged(&g);
    let destroy = compute("dev", None, &seen).unwrap();
    let text = human::render(
        &PlanDoc::new(&destroy).priced(&destroy, "us-east-1", &Default::default()),
        Style::default(),
    );
    assert!(
        text.contains("Monthly cost in us-east-1: $55.52 now, $0.00 after (-$55.52)."),
        "{text}"
    );
    let same = compute("dev", Some(&g), &seen).unwrap();
    let text = human::render(
        &PlanDoc::new(&same).priced(&same, "us-east-1", &Default::default()),
        Style::default(),
    );
    assert!(
        text.contains("Monthly cost in us-east-1: $55.52 now, $55.52 after (unchanged)."),
        "{text}"
    );
    assert!(
        markdown::render(&PlanDoc::new(&same).priced(&same, "us-east-1", &Default::default()))
            .contains("Monthly cost in us-east-1: $55.52 now, $55.52 after (unchanged).")
    );
    let text = human::render(
        &PlanDoc::new(&same).priced(&same, "ap-southeast-7", &Default::default()),
        Style::default(),
    );
    assert!(
        text.contains("Monthly cost: no prices for ap-southeast-7"),
        "{text}"
    );
    assert!(!text.contains("$0.00"), "{text}");
}

/// Issue 14: `[cost]` prices what depends on usage with the user's figures, said as assumed.
#[test]
fn cost_assumptions_price_nat_and_log_gigabytes() {
    use crate::cost::{CostAssumptions, dollars, of_graph, prices};
    let p = prices("us-east-1").unwrap();
    let g = dev();
    let plain = of_graph(&g, &p, &CostAssumptions::default());
    assert!(
        plain
            .usage
            .iter()
            .any(|u| u.contains("[cost] nat_gb_per_month prices it"))
    );
    let assume = CostAssumptions {
        nat_gb_per_month: Some(100),
        log_gb_per_month: Some(5),
        endpoint_gb_per_month: None,
    };
    let e = of_graph(&g, &p, &assume);
    let line = |what: &str| e.lines.iter().find(|l| l.what.starts_with(what)).unwrap();
    // 100 GB × $0.045; 5 GB × $0.50 ingested, 5 GB × 30 d / 30 × $0.03 stored.
    assert_eq!(dollars(line("NAT data processed").monthly), "$4.50");
    assert_eq!(line("NAT data processed").address, a("nat_gateway.nat[0]"));
    assert_eq!(dollars(line("logs ingested").monthly), "$2.50");
    assert_eq!(dollars(line("logs stored").monthly), "$0.15");
    assert_eq!(dollars(e.total() - plain.total()), "$7.15");
    assert!(
        !e.usage
            .iter()
            .any(|u| u.contains("NAT") || u.contains("CloudWatch"))
    );
}

/// Issue 14: the plan says what the NAT still carries, so that a user sees what an endpoint
/// (or an image in ECR) would take off it; a stack without a NAT says nothing of it.
#[test]
fn the_plan_says_what_goes_through_the_nat() {
    let spec = load("dev.toml");
    let through = spec::nat_traffic(&spec, "us-east-1");
    assert_eq!(
        through,
        [
            "image pulls from Docker Hub (dev-worker)",
            "pip installs from PyPI at each task start (dev-worker)",
            "the Prefect API (api.prefect.cloud)",
            "AWS APIs without a VPC endpoint (ec2, ecr.api, ecr.dkr, ecs, logs, secretsmanager, sqs)",
        ]
    );
    // The image in ECR behind its endpoints, every AWS API with one: only Prefect is left.
    let mut private = spec.clone();
    private.workers[0].image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/flows:1".into();
    private.network.endpoints.interface = spec::required_endpoints(&private)
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        spec::nat_traffic(&private, "us-east-1"),
        ["the Prefect API (api.prefect.cloud)"]
    );
    assert!(spec::nat_traffic(&load("private.toml"), "us-east-1").is_empty());

    // In the plan: the stack as it will be, under what depends on usage.
    let g = dev();
    let p = compute("dev", Some(&g), &ObservedState::default()).unwrap();
    let doc = PlanDoc::new(&p)
        .priced(&p, "us-east-1", &spec.cost)
        .reading(&spec);
    let usage = &doc.cost.as_ref().unwrap().usage;
    assert!(
        usage
            .iter()
            .any(|u| u.starts_with("through the NAT: image pulls from Docker Hub (dev-worker); ")),
        "{usage:?}"
    );
}

/// ARM workers (issue 12, issue 14's cost): the task definition asks for ARM64, the pool's
/// flow runs are registered for it too, and the plan prices them at Fargate's ARM rates —
/// 0.5 × 0.03238 × 730 + 1 × 0.00356 × 730 = $14.42 against $18.02 for x86.
#[test]
fn arm_workers_run_and_cost_as_arm() {
    use crate::cost::{dollars, of_graph, prices};
    let mut spec = load("dev.toml");
    spec.workers[0].architecture = spec::Arch::Arm64;
    spec.work_pools[0].architecture = spec::Arch::Arm64;
    let g = build(&spec, "us-east-1", key(), Some(&template())).unwrap();
    let td = g.get(&a("ecs_task_definition.dev-worker")).unwrap();
    assert_eq!(td.attrs["cpu_architecture"], "ARM64");
    let pool = g.get(&a("prefect_work_pool.ecs-work-pool")).unwrap();
    assert_eq!(
        pool.attrs["base_job_template"]["job_configuration"]["task_definition"]["runtimePlatform"],
        serde_json::json!({"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"})
    );
    let p = prices("us-east-1").unwrap();
    let arm = of_graph(&g, &p, &Default::default());
    let fargate = arm
        .lines
        .iter()
        .find(|l| l.what.contains("Fargate"))
        .unwrap();
    assert_eq!(fargate.what, "1 Fargate task(s) of 0.5 vCPU and 1 GB, ARM");
    assert_eq!(dollars(fargate.monthly), "$14.42");
    let x86 = of_graph(&dev(), &p, &Default::default());
    assert_eq!(dollars(x86.total() - arm.total()), "$3.60");
    // An x86 pool's template is the server's, untouched.
    let x86_pool = dev();
    let t = &x86_pool
        .get(&a("prefect_work_pool.ecs-work-pool"))
        .unwrap()
        .attrs["base_job_template"];
    assert!(
        t["job_configuration"]["task_definition"]
            .get("runtimePlatform")
            .is_none()
    );
}

#[test]
fn a_pool_runs_on_one_architecture() {
    let env = |_: &str| Some("x".to_string());
    let source = "[stack]\nname = \"s\"\nregion = \"us-east-1\"\n[prefect]\n\
                  api_url = \"http://p.internal:4200/api\"\n\
                  [[worker]]\nname = \"a\"\nwork_pool = \"p\"\n\
                  [[worker]]\nname = \"b\"\nwork_pool = \"p\"\narchitecture = \"arm64\"\n\
                  [[worker]]\nname = \"c\"\narchitecture = \"aarch64\"\n";
    let err = spec::parse(source, Path::new("t.toml"), &env, None).unwrap_err();
    let text = spec::render_plain(&err);
    assert!(
        text.contains(
            "worker \"b\" is arm64 but worker[0] of the same pool \"p\" is x86_64: a pool's flow \
             runs run on one architecture; give the worker its own pool"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "architecture must be \"x86_64\" or \"arm64\" (Fargate's two), not \"aarch64\""
        ),
        "{text}"
    );
}

/// An existing resource the spec names that is gone stops a plan to the spec, never a destroy.
#[test]
fn a_missing_existing_resource_stops_the_plan_and_not_the_destroy() {
    let g = dev();
    let observed = ObservedState {
        missing: vec!["[cluster] arn arn:aws:ecs:us-east-1:1:cluster/x: no such cluster".into()],
        ..converged(&g)
    };
    let err = compute("dev", Some(&g), &observed).unwrap_err();
    assert!(
        err.to_string()
            .contains("names existing resources that are not there")
            && err.to_string().contains("cluster/x: no such cluster"),
        "{err}"
    );
    let plan = crate::plan::destroy("dev", &g, &observed).unwrap();
    assert!(plan.changes.iter().all(|c| c.action == Action::Delete));
    assert!(!plan.changes.is_empty());
}
