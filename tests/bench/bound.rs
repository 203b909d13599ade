//! The critical-path bound: the least time an apply or a destroy can take on the schedule the
//! tool itself computes (`prefect_ecs::apply::schedule`), with unlimited parallelism, when every
//! API call costs the proxy's latency and every asynchronous AWS change takes the proxy's model
//! duration (`tests/it/proxy/model.rs`, same time scale).
//!
//! Each step costs the round trips AWS needs *in sequence* for it (calls that can overlap count
//! once) plus the time AWS takes to finish it; a step starts when the last step it needs ends.
//! A poll that sees "done" can overlap the wait entirely, so a wait costs exactly its duration.

use std::collections::BTreeMap;
use std::time::Duration;

use prefect_ecs::apply::{Op, Step};
use prefect_ecs::model::{Attrs, Kind, Outputs};
use prefect_ecs::plan::Plan;
use serde_json::{Value, json};

use crate::proxy::model::Timings;

/// What one step needs at least: round trips one after another, then AWS's own time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub round_trips: u32,
    pub wait: Duration,
}

impl Cost {
    fn calls(round_trips: u32) -> Self {
        Cost {
            round_trips,
            wait: Duration::ZERO,
        }
    }

    fn then_wait(round_trips: u32, wait: Duration) -> Self {
        Cost { round_trips, wait }
    }

    fn time(self, call: Duration) -> Duration {
        call * self.round_trips + self.wait
    }
}

fn non_empty(attrs: &Attrs, key: &str) -> bool {
    attrs
        .get(key)
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// The least one create costs on AWS, from what the resource needs set.
fn create_cost(kind: Kind, attrs: &Attrs, t: &Timings, wait_for_services: bool) -> Cost {
    // A follow-up call (an attribute AWS cannot take in the create, a route, an attachment)
    // needs the id the create returns; follow-ups of one resource can all overlap.
    let then = |needed: bool| Cost::calls(1 + u32::from(needed));
    match kind {
        // A new VPC has DNS support on and DNS hostnames off; anything else is one more call.
        Kind::Vpc => then(
            attrs.get("enable_dns_hostnames") == Some(&json!(true))
                || attrs.get("enable_dns_support") == Some(&json!(false)),
        ),
        Kind::Subnet => then(attrs.get("map_public_ip_on_launch") == Some(&json!(true))),
        Kind::InternetGateway => then(attrs.get("vpc_id").is_some()),
        Kind::RouteTable => then(non_empty(attrs, "routes") || non_empty(attrs, "subnet_ids")),
        // A new group allows all egress and no ingress.
        Kind::SecurityGroup => then(
            non_empty(attrs, "ingress")
                || attrs.get("egress")
                    != Some(
                        &json!([{"protocol": "-1", "from_port": null, "to_port": null, "cidr": "0.0.0.0/0"}]),
                    ),
        ),
        Kind::IamRole => then(non_empty(attrs, "managed_policy_arns")),
        // Retention is not a CreateLogGroup parameter.
        Kind::LogGroup => then(attrs.get("retention_in_days").is_some_and(|v| !v.is_null())),
        Kind::NatGateway => Cost::then_wait(1, t.nat_create.min),
        // An interface endpoint's ENIs and DNS; a gateway endpoint is available at once.
        Kind::VpcEndpoint if attrs.get("endpoint_type") == Some(&json!("Interface")) => {
            Cost::then_wait(1, t.endpoint_create.min)
        }
        Kind::Namespace => Cost::then_wait(1, t.namespace_operation.min),
        Kind::EcsService if wait_for_services => Cost::then_wait(1, t.service_rollout.min),
        // Made before any AWS resource (a fixed round trip of the run); its step fills in the
        // template from the live stack.
        Kind::WorkPool => Cost::calls(1),
        // CreateQueue answers the URL; the ARN the rule and the policy name is one more read.
        Kind::SqsQueue => Cost::calls(2),
        // PutRule, then its target.
        Kind::EventRule => Cost::calls(2),
        Kind::Eip
        | Kind::VpcEndpoint
        | Kind::SqsQueuePolicy
        | Kind::IamRolePolicy
        | Kind::Secret
        | Kind::CloudMapService
        | Kind::EcsCluster
        | Kind::TaskDefinition
        | Kind::EcsService => Cost::calls(1),
    }
}

/// The least one delete costs on AWS.
fn delete_cost(kind: Kind, attrs: &Attrs, outputs: &Outputs, t: &Timings) -> Cost {
    let then = |needed: bool| Cost::calls(1 + u32::from(needed));
    match kind {
        // Detach, then delete.
        Kind::InternetGateway => then(attrs.get("vpc_id").is_some_and(|v| !v.is_null())),
        Kind::RouteTable => then(outputs.keys().any(|k| k.starts_with("association:"))),
        Kind::IamRole => then(non_empty(attrs, "managed_policy_arns")),
        Kind::NatGateway => Cost::then_wait(1, t.nat_delete.min),
        Kind::VpcEndpoint if attrs.get("endpoint_type") == Some(&json!("Interface")) => {
            Cost::then_wait(1, t.endpoint_delete.min)
        }
        Kind::Namespace => Cost::then_wait(1, t.namespace_operation.min),
        // A force delete needs no scale-down first; the cluster cannot go before the drain.
        Kind::EcsService => Cost::then_wait(1, t.service_drain.min),
        // The targets, then the rule.
        Kind::EventRule => Cost::calls(2),
        Kind::Vpc
        | Kind::VpcEndpoint
        | Kind::SqsQueue
        | Kind::SqsQueuePolicy
        | Kind::WorkPool
        | Kind::Subnet
        | Kind::Eip
        | Kind::SecurityGroup
        | Kind::IamRolePolicy
        | Kind::Secret
        | Kind::CloudMapService
        | Kind::LogGroup
        | Kind::EcsCluster
        | Kind::TaskDefinition => Cost::calls(1),
    }
}

pub fn step_cost(plan: &Plan, step: &Step, t: &Timings, wait_for_services: bool) -> Cost {
    let change = &plan.changes[step.change];
    let kind = step.address.kind;
    match step.op {
        Op::Create => {
            let desired = change
                .desired
                .as_ref()
                .expect("a create has a desired resource");
            create_cost(kind, &desired.attrs, t, wait_for_services)
        }
        // Not part of any benchmark scenario: one call.
        Op::Update => Cost::calls(1),
        Op::Delete => {
            let o = change
                .observed
                .as_ref()
                .expect("a delete has an observed resource");
            delete_cost(kind, &o.attrs, &o.outputs, t)
        }
    }
}

/// The bound of a run: `fixed_round_trips` (lock, discovery, unlock) plus the longest path
/// through the schedule.
pub struct Bound {
    pub total: Duration,
    /// The steps of the longest path, first to last, with what each costs.
    pub path: Vec<(String, Cost)>,
}

pub fn critical_path(
    plan: &Plan,
    t: &Timings,
    wait_for_services: bool,
    fixed_round_trips: u32,
) -> Bound {
    let (steps, deps) = prefect_ecs::apply::schedule(plan);
    let costs: Vec<Cost> = steps
        .iter()
        .map(|s| step_cost(plan, s, t, wait_for_services))
        .collect();
    // finish[s]: the earliest a step can end; `prev` remembers which dependency set it.
    let mut finish: BTreeMap<usize, (Duration, Option<usize>)> = BTreeMap::new();
    fn visit(
        s: usize,
        deps: &[Vec<usize>],
        costs: &[Cost],
        call: Duration,
        finish: &mut BTreeMap<usize, (Duration, Option<usize>)>,
    ) -> Duration {
        if let Some((f, _)) = finish.get(&s) {
            return *f;
        }
        let mut start = Duration::ZERO;
        let mut prev = None;
        for &d in &deps[s] {
            let f = visit(d, deps, costs, call, finish);
            if f > start {
                start = f;
                prev = Some(d);
            }
        }
        let end = start + costs[s].time(call);
        finish.insert(s, (end, prev));
        end
    }
    let mut last = None;
    let mut longest = Duration::ZERO;
    for s in 0..steps.len() {
        let f = visit(s, &deps, &costs, t.call.min, &mut finish);
        if f > longest {
            longest = f;
            last = Some(s);
        }
    }
    let mut path = Vec::new();
    while let Some(s) = last {
        path.push((steps[s].address.to_string(), costs[s]));
        last = finish[&s].1;
    }
    path.reverse();
    Bound {
        total: longest + t.call.min * fixed_round_trips,
        path,
    }
}
