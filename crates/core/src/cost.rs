//! The stack's monthly cost (issue 14): pure, from the repository's price table
//! (`crates/core/prices/aws.toml`, with its source and date) and the resources a stack has or
//! will have. No network call: a region without prices is said to have none, never priced at
//! zero. Hourly prices are charged for [`HOURS_PER_MONTH`].
//!
//! What has a fixed price is priced per resource: NAT gateway hours, public IPv4 addresses
//! (every Elastic IP, and every worker task with a public IP), Fargate vCPU and GB hours of the
//! workers' tasks, the secret, the namespace's hosted zone, the Cloud Map instance each worker
//! task registers. What depends on usage (NAT and log GB, flow runs' own tasks, SQS requests)
//! is listed with its unit price instead.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::kinds::{ecs_service, task_definition, vpc_endpoint};
use crate::model::{Address, Attrs, Desired, Kind, Observed, ObservedState, as_reference};
pub use crate::spec::CostAssumptions;

/// AWS bills hourly resources for 730 hours a month (8,760 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// One region's prices, USD.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    pub as_of: String,
    pub nat_gateway_hour: f64,
    pub nat_gateway_gb: f64,
    /// An interface endpoint, per availability zone (ENI) and hour.
    pub interface_endpoint_hour: f64,
    pub interface_endpoint_gb: f64,
    pub public_ipv4_hour: f64,
    pub fargate_vcpu_hour: f64,
    pub fargate_gb_hour: f64,
    /// Fargate on ARM (Graviton), Linux.
    pub fargate_arm_vcpu_hour: f64,
    pub fargate_arm_gb_hour: f64,
    pub secret_month: f64,
    pub hosted_zone_month: f64,
    pub cloud_map_instance_month: f64,
    pub logs_ingest_gb: f64,
    pub logs_storage_gb_month: f64,
}

/// Where the table's figures come from, as the plan prints it.
pub const SOURCE: &str = "AWS on-demand list prices (aws.amazon.com/<service>/pricing)";

/// The region's prices from the repository's table; `None` for a region it does not hold.
pub fn prices(region: &str) -> Option<Prices> {
    let table: BTreeMap<String, Prices> =
        toml::from_str(include_str!("../prices/aws.toml")).expect("the price table parses");
    table.get(region).cloned()
}

/// One priced item: what it is and its monthly figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub address: Address,
    pub what: String,
    pub monthly: f64,
}

/// The stack's fixed monthly cost, item by item, and what depends on usage.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Estimate {
    pub lines: Vec<Line>,
    pub usage: Vec<String>,
}

impl Estimate {
    pub fn total(&self) -> f64 {
        self.lines.iter().fold(0.0, |sum, l| sum + l.monthly)
    }

    /// The cost as a plan shows it: each item with its monthly figure, the total, what depends
    /// on usage, and where the prices come from.
    pub fn render(&self, region: &str, prices: &Prices) -> String {
        let mut out = String::new();
        let width = self
            .lines
            .iter()
            .map(|l| l.address.to_string().len())
            .max()
            .unwrap_or(0);
        for l in &self.lines {
            out.push_str(&format!(
                "  {:>9}  {:<width$}  {}\n",
                dollars(l.monthly),
                l.address.to_string(),
                l.what
            ));
        }
        out.push_str(&format!(
            "  {:>9}  a month in {region}\n",
            dollars(self.total())
        ));
        out.push_str("  Depends on usage:\n");
        for u in &self.usage {
            out.push_str(&format!("    {u}\n"));
        }
        out.push_str(&format!("  Prices: {SOURCE}, as of {}.\n", prices.as_of));
        out
    }
}

/// What a worker's service runs: its tasks' size, how many, with a public IP or not.
#[derive(Debug, Clone, PartialEq)]
struct Tasks {
    vcpu: f64,
    gb: f64,
    count: u64,
    public_ip: bool,
    registered: bool,
    arm: bool,
}

/// What the stack costs once it is as `graph` says.
pub fn of_graph(
    graph: &crate::graph::StackGraph,
    prices: &Prices,
    assume: &CostAssumptions,
) -> Estimate {
    desired(graph.resources(), prices, assume)
}

/// What the stack costs as it is in AWS now.
pub fn of_observed(state: &ObservedState, prices: &Prices, assume: &CostAssumptions) -> Estimate {
    observed(state.resources.iter(), prices, assume)
}

/// What the stack costs now (what the plan found in AWS) and once the plan is applied (what
/// it leaves: every desired resource; nothing for a destroy).
pub fn of_plan(
    plan: &crate::plan::Plan,
    prices: &Prices,
    assume: &CostAssumptions,
) -> (Estimate, Estimate) {
    let before = observed(
        plan.changes.iter().filter_map(|c| c.observed.as_ref()),
        prices,
        assume,
    );
    let after = desired(
        plan.changes
            .iter()
            .filter(|c| c.action != crate::plan::Action::Delete)
            .filter_map(|c| c.desired.as_ref()),
        prices,
        assume,
    );
    (before, after)
}

/// Desired resources: a service's task definition is the one its reference names.
fn desired<'a>(
    resources: impl Iterator<Item = &'a Desired>,
    prices: &Prices,
    assume: &CostAssumptions,
) -> Estimate {
    // In the graph's order: the plan lists them as it creates them.
    let resources: Vec<&Desired> = resources.collect();
    let by_address: BTreeMap<&Address, &Attrs> =
        resources.iter().map(|d| (&d.address, &d.attrs)).collect();
    estimate(
        resources.iter().map(|d| (&d.address, &d.attrs)),
        |service: &Attrs| {
            let (td, _) = as_reference(service.get(ecs_service::TASK_DEFINITION)?)?;
            size(by_address.get(&td)?)
        },
        prices,
        assume,
    )
}

/// Resources found in AWS (not those being deleted): a service's task definition is the one
/// with the ARN it names.
fn observed<'a>(
    resources: impl Iterator<Item = &'a Observed>,
    prices: &Prices,
    assume: &CostAssumptions,
) -> Estimate {
    let live: Vec<&Observed> = resources.filter(|o| !o.deleting).collect();
    let by_arn: BTreeMap<&str, &Attrs> = live
        .iter()
        .filter(|o| o.address.kind == Kind::TaskDefinition)
        .filter_map(|o| Some((o.outputs.get("arn")?.as_str(), &o.attrs)))
        .collect();
    estimate(
        live.iter().map(|o| (&o.address, &o.attrs)),
        |service: &Attrs| {
            let arn = service.get(ecs_service::TASK_DEFINITION)?.as_str()?;
            size(by_arn.get(arn)?)
        },
        prices,
        assume,
    )
}

/// A task definition's vCPU and GB (`"512"` CPU units, `"1024"` MiB), and whether it is ARM.
fn size(td: &Attrs) -> Option<(f64, f64, bool)> {
    let number = |key: &str| -> Option<f64> {
        match td.get(key)? {
            Value::String(s) => s.parse().ok(),
            v => v.as_f64(),
        }
    };
    let arm = td
        .get(task_definition::CPU_ARCHITECTURE)
        .and_then(Value::as_str)
        == Some(task_definition::ARM64);
    Some((
        number(task_definition::CPU)? / 1024.0,
        number(task_definition::MEMORY)? / 1024.0,
        arm,
    ))
}

fn estimate<'a>(
    resources: impl Iterator<Item = (&'a Address, &'a Attrs)>,
    task_size: impl Fn(&Attrs) -> Option<(f64, f64, bool)>,
    p: &Prices,
    assume: &CostAssumptions,
) -> Estimate {
    let hourly = |price: f64| price * HOURS_PER_MONTH;
    let mut e = Estimate::default();
    let mut first_nat: Option<Address> = None;
    let mut first_interface: Option<Address> = None;
    let mut log_group: Option<(Address, Option<u64>)> = None;
    let mut line = |address: &Address, what: String, monthly: f64| {
        e.lines.push(Line {
            address: address.clone(),
            what,
            monthly,
        });
    };
    for (address, attrs) in resources {
        match address.kind {
            Kind::NatGateway => {
                first_nat.get_or_insert_with(|| address.clone());
                line(
                    address,
                    format!(
                        "NAT gateway, {HOURS_PER_MONTH} h × {}",
                        unit(p.nat_gateway_hour)
                    ),
                    hourly(p.nat_gateway_hour),
                )
            }
            Kind::LogGroup => {
                let retention = attrs
                    .get(crate::kinds::log_group::RETENTION_IN_DAYS)
                    .and_then(Value::as_u64);
                log_group = Some((address.clone(), retention));
            }
            Kind::Eip => line(
                address,
                format!(
                    "public IPv4 address, {HOURS_PER_MONTH} h × {}",
                    unit(p.public_ipv4_hour)
                ),
                hourly(p.public_ipv4_hour),
            ),
            Kind::VpcEndpoint => {
                let kind = attrs
                    .get(vpc_endpoint::ENDPOINT_TYPE)
                    .and_then(Value::as_str);
                if kind == Some(vpc_endpoint::GATEWAY) {
                    line(address, "gateway endpoint: free".into(), 0.0);
                    continue;
                }
                first_interface.get_or_insert_with(|| address.clone());
                let azs = attrs
                    .get(vpc_endpoint::SUBNET_IDS)
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                line(
                    address,
                    format!(
                        "interface endpoint, {azs} AZ × {HOURS_PER_MONTH} h × {}",
                        unit(p.interface_endpoint_hour)
                    ),
                    azs as f64 * hourly(p.interface_endpoint_hour),
                )
            }
            Kind::Secret => line(address, "secret".into(), p.secret_month),
            Kind::Namespace => line(
                address,
                "private hosted zone of the DNS namespace".into(),
                p.hosted_zone_month,
            ),
            Kind::EcsService => {
                let Some(t) = tasks(attrs, &task_size) else {
                    continue;
                };
                let n = t.count as f64;
                let (arch, vcpu_hour, gb_hour) = match t.arm {
                    true => ("ARM", p.fargate_arm_vcpu_hour, p.fargate_arm_gb_hour),
                    false => ("x86", p.fargate_vcpu_hour, p.fargate_gb_hour),
                };
                line(
                    address,
                    format!(
                        "{} Fargate task(s) of {} vCPU and {} GB, {arch}",
                        t.count, t.vcpu, t.gb
                    ),
                    n * (hourly(t.vcpu * vcpu_hour) + hourly(t.gb * gb_hour)),
                );
                if t.public_ip && t.count > 0 {
                    line(
                        address,
                        format!("{} task public IPv4 address(es)", t.count),
                        n * hourly(p.public_ipv4_hour),
                    );
                }
                if t.registered && t.count > 0 {
                    line(
                        address,
                        format!("{} Cloud Map instance(s)", t.count),
                        n * p.cloud_map_instance_month,
                    );
                }
            }
            _ => {}
        }
    }
    let mut usage = Vec::new();
    // Data the NAT gateways or the interface endpoints process: priced at the first of them
    // by its `[cost]` key, or listed as usage.
    let processed = [
        (
            &first_nat,
            assume.nat_gb_per_month,
            p.nat_gateway_gb,
            ("NAT", "NAT gateway"),
            ("nat_gb_per_month", "all gateways"),
        ),
        (
            &first_interface,
            assume.endpoint_gb_per_month,
            p.interface_endpoint_gb,
            ("endpoint", "interface endpoint"),
            ("endpoint_gb_per_month", "all interface endpoints"),
        ),
    ];
    for (first, gb, price, (short, long), (key, all)) in processed {
        match (first, gb) {
            (Some(at), Some(gb)) => line(
                at,
                format!(
                    "{short} data processed, {gb} GB × {} ([cost] {key}, {all})",
                    unit(price)
                ),
                f64::from(gb) * price,
            ),
            (Some(_), None) => usage.push(format!(
                "{long} data processed: {} per GB ([cost] {key} prices it)",
                unit(price)
            )),
            (None, _) => {}
        }
    }
    match (&log_group, assume.log_gb_per_month) {
        (Some((group, retention)), Some(gb)) => {
            line(
                group,
                format!(
                    "logs ingested, {gb} GB × {} ([cost] log_gb_per_month)",
                    unit(p.logs_ingest_gb)
                ),
                f64::from(gb) * p.logs_ingest_gb,
            );
            // Kept `retention` days: in steady state that many days' worth is stored.
            match retention {
                Some(days) => line(
                    group,
                    format!(
                        "logs stored, {gb} GB × {days} d / 30 × {} a GB-month",
                        unit(p.logs_storage_gb_month)
                    ),
                    f64::from(gb) * *days as f64 / 30.0 * p.logs_storage_gb_month,
                ),
                None => usage.push(format!(
                    "CloudWatch Logs storage: {} per GB-month, growing without a retention",
                    unit(p.logs_storage_gb_month)
                )),
            }
        }
        (Some(_), None) => usage.push(format!(
            "CloudWatch Logs: {} per GB ingested, {} per GB-month stored ([cost] \
             log_gb_per_month prices it)",
            unit(p.logs_ingest_gb),
            unit(p.logs_storage_gb_month)
        )),
        (None, _) => {}
    }
    usage.push(format!(
        "flow runs' own Fargate tasks: {} per vCPU-hour, {} per GB-hour while they run",
        unit(p.fargate_vcpu_hour),
        unit(p.fargate_gb_hour)
    ));
    usage.push(
        "SQS requests and EventBridge's AWS events: within the free tier for the task events"
            .into(),
    );
    e.usage = usage;
    e
}

fn tasks(
    service: &Attrs,
    task_size: &impl Fn(&Attrs) -> Option<(f64, f64, bool)>,
) -> Option<Tasks> {
    let (vcpu, gb, arm) = task_size(service)?;
    let network = service.get(ecs_service::NETWORK);
    Some(Tasks {
        vcpu,
        gb,
        arm,
        count: service.get(ecs_service::DESIRED_COUNT)?.as_u64()?,
        public_ip: network
            .and_then(|n| n.get("assign_public_ip"))
            .and_then(Value::as_str)
            == Some("ENABLED"),
        registered: service
            .get(ecs_service::SERVICE_REGISTRIES)
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty()),
    })
}

/// A unit price with at least its cents: `$0.50`, `$0.004445`.
fn unit(price: f64) -> String {
    let plain = price.to_string();
    match plain.split_once('.') {
        Some((_, decimals)) if decimals.len() >= 2 => format!("${plain}"),
        _ => format!("${price:.2}"),
    }
}

/// `$18.02`: dollars and cents.
pub fn dollars(amount: f64) -> String {
    format!("${amount:.2}")
}
