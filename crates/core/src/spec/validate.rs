//! From the raw file to the model: substitute variables, fill defaults, carve subnets, and
//! record a problem for everything AWS or Prefect would reject later, mid-apply.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::{Range, RangeInclusive};
use std::path::Path;

use ipnet::Ipv4Net;
use toml::Spanned;
use toml::de::DeTable;

use super::Problem;
use super::model::*;
use super::paths::{self, KeyPath};
use super::raw::*;
use crate::model::{TAG_ADDRESS, TAG_SPEC, TAG_STACK};

/// Set on the worker by prefect-ecs itself; a user value would fight with ours.
const RESERVED_ENV: [&str; 5] = [
    "PREFECT_API_KEY",
    "PREFECT_API_AUTH_STRING",
    "PREFECT_API_URL",
    "PREFECT_ACCOUNT_ID",
    "PREFECT_WORKSPACE_ID",
];
const RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];
const FARGATE_CPU: [u32; 7] = [256, 512, 1024, 2048, 4096, 8192, 16384];
const DEFAULT_CIDR: &str = "10.0.0.0/16";
/// Tags a resource may carry (EC2, IAM, ECS, Logs, Secrets Manager and Cloud Map alike).
const MAX_TAGS: usize = 50;
/// The tags prefect-ecs puts on a resource besides the user's (`Name` on EC2 resources).
const OWN_TAGS: [&str; 4] = [TAG_STACK, TAG_ADDRESS, TAG_SPEC, "Name"];
/// A worker's environment, names and values: ECS takes a task definition of up to 64 KiB,
/// and the rest of the worker's needs a few.
const MAX_ENV_BYTES: usize = 60 * 1024;
/// How many availability zones a stack spans.
const ZONES: RangeInclusive<usize> = 1..=6;

/// The memory sizes Fargate accepts with `cpu`, or `None` if `cpu` is not a Fargate size.
pub(super) fn fargate_memory(cpu: u32) -> Option<Vec<u32>> {
    let (low, high, step) = match cpu {
        256 => return Some(vec![512, 1024, 2048]),
        512 => (1024, 4096, 1024),
        1024 => (2048, 8192, 1024),
        2048 => (4096, 16384, 1024),
        4096 => (8192, 30720, 1024),
        8192 => (16384, 61440, 4096),
        16384 => (32768, 122880, 8192),
        _ => return None,
    };
    Some((low..=high).step_by(step).collect())
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum SubstError {
    Unset(String),
    Forbidden(String),
    Malformed,
}

/// Expands `${NAME}` from `env`, and `${NAME:-default}` to `default` when `NAME` is unset or
/// empty (as a shell does); `$$` is a literal `$` and a lone `$` is kept as is.
pub(super) fn substitute(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    forbidden: &[String],
) -> Result<String, Vec<SubstError>> {
    let mut out = String::new();
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
            continue;
        }
        let Some(body) = rest.strip_prefix("${") else {
            out.push('$');
            rest = &rest[1..];
            continue;
        };
        let Some(end) = body.find('}') else {
            errors.push(SubstError::Malformed);
            rest = "";
            break;
        };
        let (name, default) = match body[..end].split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (&body[..end], None),
        };
        rest = &body[end + 1..];
        if !is_env_name(name) {
            errors.push(SubstError::Malformed);
        } else if forbidden.iter().any(|f| f == name) {
            errors.push(SubstError::Forbidden(name.to_owned()));
        } else if let Some(value) = env(name).filter(|v| default.is_none() || !v.is_empty()) {
            out.push_str(&value);
        } else if let Some(default) = default {
            out.push_str(default);
        } else {
            errors.push(SubstError::Unset(name.to_owned()));
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The file the raw spec was read from, as the checks need it.
pub(super) struct File<'a> {
    pub doc: &'a DeTable<'a>,
    pub path: &'a Path,
    /// The keys `schema::check` took out for their type (already reported).
    pub dropped: &'a HashSet<String>,
    /// The environment merged in, if any.
    pub env: Option<&'a super::env::Selected>,
}

pub(super) fn validate(
    raw: &RawSpec,
    file: &File,
    env: &dyn Fn(&str) -> Option<String>,
    region: Option<&str>,
    problems: &mut Vec<(usize, Problem)>,
) -> Spec {
    let path = file.path;
    let mut c = Checker {
        doc: file.doc,
        env,
        dropped: file.dropped,
        forbidden: vec![
            "PREFECT_API_KEY".to_owned(),
            "PREFECT_API_AUTH_STRING".to_owned(),
        ],
        problems,
    };
    let root = KeyPath::default();
    // The key variable must be known before any other value is substituted.
    let prefect = c.prefect(raw.prefect.as_ref(), path);

    let stack_span = raw.stack.as_ref().map(|s| s.span());
    let (mut name, spec_region, tags) = match &raw.stack {
        Some(stack) => c.stack(stack),
        None => {
            c.report(
                None,
                &root.key("stack"),
                "missing [stack] table; add one with name = \"<stack name>\"",
            );
            (String::new(), None, BTreeMap::new())
        }
    };
    let stack = raw.stack.as_ref().map(|s| s.get_ref());
    // An environment's stack is `<stack>-<env>` unless the environment names it.
    if let Some(env) = file.env.filter(|e| !e.names_stack && !name.is_empty()) {
        let derived = format!("{name}-{}", env.name);
        if stack_name(&derived).is_err() && stack_name(&name).is_ok() {
            let message = format!(
                "environment {} makes the stack name \"{derived}\", longer than the 28 \
                 characters a stack name may have; shorten [stack] name or set \
                 [env.{}.stack] name",
                env.name, env.name
            );
            let span = stack.and_then(|s| s.name.as_ref()).map(|n| n.span());
            c.report(span, &root.key("stack").key("name"), message);
        }
        name = derived;
    }
    let sp = root.key("stack");
    let account_id = stack
        .and_then(|s| s.account_id.as_ref())
        .map(|a| c.string(Some(a), &sp.key("account_id"), String::new(), account_id));
    let protected = match stack {
        Some(s) => c.flag(&s.protected, &sp.key("protected"), false),
        None => false,
    };
    // An invalid spec region is already reported; naming zones after it avoids a second,
    // misleading "no region" problem.
    let region = spec_region.as_deref().or(region);

    let network = c.network(&raw.network, &name, region, stack_span);
    let secret = c.secret(&raw.secret, &name, region);
    if let (Some(arn), None) = (&raw.secret.arn, &prefect.credential) {
        let message = "[prefect] names no credential (a server without auth): there is \
                       nothing for the workers to read from a secret; remove arn";
        c.report(Some(arn.span()), &root.key("secret").key("arn"), message);
    }
    let ip = root.key("iam");
    let iam = Iam {
        execution_role_name: c.string(
            raw.iam.execution_role_name.as_ref(),
            &ip.key("execution_role_name"),
            format!("{name}-task-execution-role"),
            role_name,
        ),
        task_role_name: c.string(
            raw.iam.task_role_name.as_ref(),
            &ip.key("task_role_name"),
            format!("{name}-worker-task-role"),
            role_name,
        ),
        flow_run_role_name: c
            .flag(&raw.iam.flow_run_role, &ip.key("flow_run_role"), true)
            .then(|| {
                c.string(
                    raw.iam.flow_run_role_name.as_ref(),
                    &ip.key("flow_run_role_name"),
                    format!("{name}-flow-run-role"),
                    role_name,
                )
            }),
        path: c.string(
            raw.iam.path.as_ref(),
            &ip.key("path"),
            "/".into(),
            role_path,
        ),
        permissions_boundary: raw.iam.permissions_boundary.as_ref().map(|b| {
            c.string(
                Some(b),
                &ip.key("permissions_boundary"),
                String::new(),
                policy_arn,
            )
        }),
    };
    let roles = [
        (
            "execution_role_name",
            Some(&iam.execution_role_name),
            &raw.iam.execution_role_name,
        ),
        (
            "task_role_name",
            Some(&iam.task_role_name),
            &raw.iam.task_role_name,
        ),
        (
            "flow_run_role_name",
            iam.flow_run_role_name.as_ref(),
            &raw.iam.flow_run_role_name,
        ),
    ];
    c.distinct_roles(&ip, &roles);
    let namespace = c.string(
        raw.service_discovery.namespace.as_ref(),
        &root.key("service_discovery").key("namespace"),
        format!("{name}.prefect.local"),
        dns_name,
    );
    let lp = root.key("logs");
    let logs = Logs {
        group: c.string(
            raw.logs.group.as_ref(),
            &lp.key("group"),
            format!("/prefect-ecs/{name}/workers"),
            log_group,
        ),
        retention_days: c.retention(&raw.logs.retention_days, &lp.key("retention_days")),
    };
    let cp = root.key("cluster");
    let existing_cluster = raw.cluster.arn.as_ref().map(|arn| {
        let arn = c.string(Some(arn), &cp.key("arn"), String::new(), |arn| {
            cluster_arn(arn, region)
        });
        let given = [
            ("name", raw.cluster.name.as_ref().map(|n| n.span())),
            (
                "container_insights",
                raw.cluster.container_insights.as_ref().map(|n| n.span()),
            ),
        ];
        c.refuse(&cp, given, |key| {
            format!(
                "{key} is of a cluster prefect-ecs makes; with arn the cluster exists already \
                 and is only read: remove {key}"
            )
        });
        arn
    });
    let cluster = match existing_cluster {
        Some(arn) => Cluster {
            name: arn.rsplit('/').next().unwrap_or_default().to_owned(),
            arn: Some(arn),
            container_insights: false,
        },
        None => Cluster {
            arn: None,
            name: c.string(
                raw.cluster.name.as_ref(),
                &root.key("cluster").key("name"),
                format!("{name}-cluster"),
                aws_name("ECS cluster name", 255, |ch| "_-".contains(ch)),
            ),
            container_insights: c.flag(
                &raw.cluster.container_insights,
                &root.key("cluster").key("container_insights"),
                false,
            ),
        },
    };
    let cp = root.key("cost");
    let cost = CostAssumptions {
        nat_gb_per_month: c.optional_number(
            &raw.cost.nat_gb_per_month,
            &cp.key("nat_gb_per_month"),
            0..=10_000_000,
        ),
        log_gb_per_month: c.optional_number(
            &raw.cost.log_gb_per_month,
            &cp.key("log_gb_per_month"),
            0..=10_000_000,
        ),
        endpoint_gb_per_month: c.optional_number(
            &raw.cost.endpoint_gb_per_month,
            &cp.key("endpoint_gb_per_month"),
            0..=10_000_000,
        ),
    };
    let workers = c.workers(raw.worker.as_ref(), &name, file.env.is_some());
    let work_pools = c.work_pools(raw.work_pool.as_ref(), &workers);
    let region = region.map(str::to_owned);
    let spec = Spec {
        name,
        env: file.env.map(|e| e.name.clone()),
        account_id,
        protected,
        region: spec_region,
        tags,
        prefect,
        network,
        secret,
        iam,
        namespace,
        logs,
        cluster,
        cost,
        workers,
        work_pools,
    };
    c.private_egress(&spec, &raw.network, region.as_deref());
    spec
}

/// An IAM path: `/`, or `/` + segments each ending in `/`; printable ASCII, at most 512.
fn role_path(path: &str) -> Result<(), String> {
    let printable = path.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if path.len() > 512 || !printable || !path.starts_with('/') || !path.ends_with('/') {
        return Err(format!(
            "IAM path {path:?} must start and end with / (\"/\" or \"/prefect/\"), at most 512 \
             printable characters without spaces"
        ));
    }
    if path.contains("//") {
        return Err(format!("IAM path {path:?} has an empty segment (//)"));
    }
    Ok(())
}

/// A regional ARN of `service`: `arn:<partition>:<service>:<region>:<account>:<resource>`, its
/// region and resource (`None` for another shape). `what` names the key in the message of a
/// region other than the stack's, `why` says why it matters.
fn regional_arn<'a>(
    arn: &'a str,
    service: &str,
    region: Option<&str>,
    (what, why): (&str, &str),
) -> Option<Result<&'a str, String>> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let shape = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == service
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit());
    if !shape {
        return None;
    }
    Some(match region {
        Some(region) if parts[3] != region => Err(format!(
            "{what} {arn:?} is in {}, the stack in {region}: {why}",
            parts[3]
        )),
        _ => Ok(parts[5]),
    })
}

/// A KMS key's ARN in the stack's region: the execution role's `kms:Decrypt` names the key
/// itself (an alias or a bare key id would match nothing in a policy), and a secret's key is
/// in the secret's region.
fn kms_key_arn(arn: &str, region: Option<&str>) -> Result<(), String> {
    let why = "a secret's key must be in its region";
    match regional_arn(arn, "kms", region, ("kms_key_id", why)) {
        Some(Ok(key)) if key.strip_prefix("key/").is_some_and(|id| !id.is_empty()) => Ok(()),
        Some(Err(e)) => Err(e),
        _ => Err(format!(
            "kms_key_id {arn:?} must be a KMS key's ARN \
             (arn:aws:kms:<region>:<account>:key/<key id>), not an alias or a bare id: the \
             execution role's kms:Decrypt names the key"
        )),
    }
}

/// An ECS cluster's ARN in the stack's region: `arn:<partition>:ecs:<region>:<account>:cluster/<name>`.
fn cluster_arn(arn: &str, region: Option<&str>) -> Result<(), String> {
    let why = "a service runs in a cluster of its own region";
    let name_ok =
        |name: &str| aws_name("ECS cluster name", 255, |ch| "_-".contains(ch))(name).is_ok();
    match regional_arn(arn, "ecs", region, ("cluster arn", why)) {
        Some(Ok(rest)) if rest.strip_prefix("cluster/").is_some_and(name_ok) => Ok(()),
        Some(Err(e)) => Err(e),
        _ => Err(format!(
            "cluster arn {arn:?} must be a cluster's ARN \
             (arn:aws:ecs:<region>:<account>:cluster/<name>): the worker's permissions and \
             the pool's template name it"
        )),
    }
}

/// A Secrets Manager secret's ARN in the stack's region:
/// `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 characters>`.
fn secret_arn(arn: &str, region: Option<&str>) -> Result<(), String> {
    let why = "ECS reads a container's secrets in the task's region";
    let named = |rest: &str| {
        rest.strip_prefix("secret:")
            .and_then(|n| n.rsplit_once('-'))
            .is_some_and(|(name, suffix)| !name.is_empty() && suffix.len() == 6)
    };
    match regional_arn(arn, "secretsmanager", region, ("secret arn", why)) {
        Some(Ok(rest)) if named(rest) => Ok(()),
        Some(Err(e)) => Err(e),
        _ => Err(format!(
            "secret arn {arn:?} must be a secret's full ARN \
             (arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>, as \
             `aws secretsmanager describe-secret` prints it): the execution role's \
             secretsmanager:GetSecretValue names it"
        )),
    }
}

/// A managed policy's ARN: `arn:<partition>:iam::<account or aws>:policy/<path><name>`.
fn policy_arn(arn: &str) -> Result<(), String> {
    let ok = (|| {
        let rest = arn.strip_prefix("arn:")?;
        let (partition, rest) = rest.split_once(':')?;
        let rest = rest.strip_prefix("iam::")?;
        let (account, resource) = rest.split_once(':')?;
        let name = resource.strip_prefix("policy/")?;
        let account_ok = account == "aws"
            || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()));
        (partition.starts_with("aws")
            && account_ok
            && !name.is_empty()
            && !name.ends_with('/')
            && arn.len() <= 2048)
            .then_some(())
    })();
    ok.ok_or_else(|| {
        format!(
            "permissions_boundary {arn:?} is not a managed policy ARN \
             (arn:aws:iam::123456789012:policy/Boundary)"
        )
    })
}

/// The AWS services a worker stack calls from its tasks, as interface endpoints: image pulls
/// (ECR's API and registry), the logs driver, the secret (the execution role reads it at
/// start), and the worker's own calls (ECS to run flow runs, EC2 to check their network, SQS
/// for the task events).
pub fn required_endpoints(spec: &Spec) -> Vec<&'static str> {
    let mut out = vec!["ec2", "ecr.api", "ecr.dkr", "ecs", "logs"];
    if spec.prefect.credential.is_some() {
        out.push("secretsmanager");
    }
    out.push("sqs");
    out
}

/// Why the Prefect API cannot be reached from a VPC without internet, if it cannot: Prefect
/// Cloud is on the internet (PrivateLink to it is an enterprise option prefect-ecs does not
/// set up), and so is a public address; a loopback address is no other machine's. A host
/// name is taken to resolve inside the VPC.
/// What the workers' and flow runs' tasks send through the NAT gateways (issue 14): what the
/// stack's endpoints do not carry, each with who causes it. Empty without a NAT (or with the
/// tasks in public subnets, which go out through the internet gateway).
pub fn nat_traffic(spec: &Spec, region: &str) -> Vec<String> {
    let net = &spec.network;
    if net.nat == NatMode::None || net.task_subnets != Tier::Private {
        return Vec::new();
    }
    let has = |e: &str| net.endpoints.interface.iter().any(|i| i == e);
    let ecr_private = has("ecr.api") && has("ecr.dkr") && net.endpoints.s3;
    let mut pulls: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut pip = Vec::new();
    for w in &spec.workers {
        let image = crate::image::ImageRef::parse(&w.image).ok();
        let from = match image
            .as_ref()
            .map(|i| (i.ecr_region(), i.registry.as_deref()))
        {
            Some((Some(r), _)) if r == region && ecr_private => None,
            Some((Some(r), _)) if r == region => {
                Some("ECR (no ecr.api, ecr.dkr and s3 endpoints)".to_owned())
            }
            Some((Some(r), _)) => Some(format!("ECR in {r}")),
            Some((None, Some(host))) => Some(host.to_owned()),
            _ => Some("Docker Hub".to_owned()),
        };
        if let Some(from) = from {
            pulls.entry(from).or_default().push(&w.name);
        }
        let plain = image.as_ref().is_some_and(|i| i.is_plain_prefect());
        if plain || w.env.contains_key("EXTRA_PIP_PACKAGES") {
            pip.push(w.name.as_str());
        }
    }
    let mut out: Vec<String> = pulls
        .into_iter()
        .map(|(from, workers)| format!("image pulls from {from} ({})", workers.join(", ")))
        .collect();
    if !pip.is_empty() {
        out.push(format!(
            "pip installs from PyPI at each task start ({})",
            pip.join(", ")
        ));
    }
    let host = url::Url::parse(&spec.prefect.api_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    match api_needs_internet(&spec.prefect) {
        Some(_) => out.push(format!("the Prefect API ({host})")),
        None if host.parse::<std::net::Ipv4Addr>().is_err() => out.push(format!(
            "the Prefect API ({host}), unless the VPC reaches it privately"
        )),
        None => {}
    }
    let missing: Vec<&str> = required_endpoints(spec)
        .into_iter()
        .filter(|e| !has(e))
        .collect();
    if !missing.is_empty() {
        out.push(format!(
            "AWS APIs without a VPC endpoint ({})",
            missing.join(", ")
        ));
    }
    out
}

pub(crate) fn api_needs_internet(prefect: &Prefect) -> Option<String> {
    let url = url::Url::parse(&prefect.api_url).ok()?;
    let host = url.host()?;
    if prefect.cloud.is_some() {
        return Some(
            "the Prefect API is Prefect Cloud, on the internet (PrivateLink to it is an \
             enterprise option prefect-ecs does not set up)"
                .into(),
        );
    }
    match host {
        url::Host::Ipv4(ip) if ip.is_loopback() => Some(format!(
            "the Prefect API {ip} is a loopback address, which no task can reach"
        )),
        url::Host::Ipv4(ip) if !(ip.is_private() || ip.is_link_local()) => {
            Some(format!("the Prefect API {ip} is a public address"))
        }
        url::Host::Domain(name) if name.eq_ignore_ascii_case("localhost") => {
            Some("the Prefect API localhost is this machine, which no task can reach".into())
        }
        _ => None,
    }
}

type Check = fn(&str) -> Result<(), String>;

struct Checker<'a> {
    doc: &'a DeTable<'a>,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// Keys whose value had the wrong type, already reported and taken out of the raw file:
    /// a problem at one of them (its absence) is a consequence, not news.
    dropped: &'a HashSet<String>,
    /// Variables holding the API key: `${...}` on them would put the key in plain text.
    forbidden: Vec<String>,
    problems: &'a mut Vec<(usize, Problem)>,
}

impl Checker<'_> {
    fn report(&mut self, span: Option<Range<usize>>, path: &KeyPath, message: impl Into<String>) {
        if self.dropped.contains(&path.to_string()) {
            return;
        }
        let offset = span.as_ref().map_or(0, |s| s.start);
        self.problems
            .push((offset, Problem::new(message.into(), path, span)));
    }

    /// Each key of `table` that is `given` (its span) is a problem: `message` says why.
    fn refuse<const N: usize>(
        &mut self,
        table: &KeyPath,
        given: [(&str, Option<Range<usize>>); N],
        message: impl Fn(&str) -> String,
    ) {
        for (key, span) in given {
            if let Some(span) = span {
                self.report(Some(span), &table.key(key), message(key));
            }
        }
    }

    fn text(&mut self, value: &Spanned<String>, path: &KeyPath) -> Option<String> {
        let errors = match substitute(value.get_ref(), self.env, &self.forbidden) {
            Ok(text) => return Some(text),
            Err(errors) => errors,
        };
        for error in errors {
            let message = match error {
                // Without the key's path, so that every reference is one problem.
                SubstError::Unset(name) => format!(
                    "environment variable {name} is not set; set it (or pass --var \
                     {name}=…), or write ${{{name}:-default}} to give a default"
                ),
                SubstError::Forbidden(name) => format!(
                    "{path} references ${{{name}}}, the Prefect API key, which would be stored \
                     in plain text in the task definition; remove it and let prefect-ecs inject \
                     the key through Secrets Manager"
                ),
                SubstError::Malformed => format!(
                    "bad variable reference in {path}; write ${{NAME}} (letters, digits and \
                     underscores) or $$ for a literal $"
                ),
            };
            self.report(Some(value.span()), path, message);
        }
        None
    }

    /// A substituted, checked string; `default` if absent.
    fn string(
        &mut self,
        value: Option<&Spanned<String>>,
        path: &KeyPath,
        default: String,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> String {
        let Some(value) = value else {
            return default;
        };
        let Some(text) = self.text(value, path) else {
            return default;
        };
        if let Err(message) = check(&text) {
            self.report(Some(value.span()), path, message);
        }
        text
    }

    fn required(
        &mut self,
        value: &Option<Spanned<String>>,
        path: &KeyPath,
        table: Range<usize>,
        check: Check,
    ) -> String {
        if value.is_none() {
            let message = format!(
                "missing required key \"{}\" {}",
                path.last_key(),
                path.location()
            );
            self.report(Some(table), path, message);
        }
        self.string(value.as_ref(), path, String::new(), check)
    }

    /// A number as written or, from `"${VAR}"`, as substituted; `None` (reported) when it is
    /// not a whole number of `u32`'s range.
    fn resolve(&mut self, value: &Number, path: &KeyPath) -> Option<Spanned<u32>> {
        let value = value.as_ref()?;
        let n = match value.get_ref() {
            Lit::Value(n) => *n,
            Lit::Text(written) => {
                let text = self.text(&Spanned::new(value.span(), written.clone()), path)?;
                match text.trim().parse::<i64>() {
                    Ok(n) => n,
                    Err(_) => {
                        let message = format!(
                            "{} = {written:?} is {text:?} after substitution, which is not a \
                             whole number",
                            path.last_key()
                        );
                        self.report(Some(value.span()), path, message);
                        return None;
                    }
                }
            }
        };
        match u32::try_from(n) {
            Ok(n) => Some(Spanned::new(value.span(), n)),
            Err(_) => {
                let message = format!(
                    "{} = {n} is out of range (a whole number from 0 is expected)",
                    path.last_key()
                );
                self.report(Some(value.span()), path, message);
                None
            }
        }
    }

    /// A boolean as written or, from `"${VAR}"`, as substituted; `default` if absent or wrong.
    fn flag(&mut self, value: &Flag, path: &KeyPath, default: bool) -> bool {
        let Some(value) = value else {
            return default;
        };
        match value.get_ref() {
            Lit::Value(b) => *b,
            Lit::Text(written) => {
                let Some(text) = self.text(&Spanned::new(value.span(), written.clone()), path)
                else {
                    return default;
                };
                match text.trim() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        let message = format!(
                            "{} = {written:?} is {text:?} after substitution; expected true or \
                             false",
                            path.last_key()
                        );
                        self.report(Some(value.span()), path, message);
                        default
                    }
                }
            }
        }
    }

    fn number(
        &mut self,
        value: &Number,
        path: &KeyPath,
        default: u32,
        range: RangeInclusive<u32>,
    ) -> u32 {
        let Some(value) = self.resolve(value, path) else {
            return default;
        };
        let n = *value.get_ref();
        if !range.contains(&n) {
            let message = format!(
                "{} = {n} is out of range (allowed: {} to {})",
                path.last_key(),
                range.start(),
                range.end()
            );
            self.report(Some(value.span()), path, message);
        }
        n
    }

    /// A number that may be left out: `None` then, and for one out of range (reported).
    fn optional_number(
        &mut self,
        value: &Number,
        path: &KeyPath,
        range: RangeInclusive<u32>,
    ) -> Option<u32> {
        value.as_ref()?;
        let n = self.number(value, path, 0, range.clone());
        range.contains(&n).then_some(n)
    }

    fn prefect(&mut self, raw: Option<&Spanned<RawPrefect>>, spec_path: &Path) -> Prefect {
        let p = KeyPath::default().key("prefect");
        let Some(raw) = raw else {
            self.report(
                None,
                &p,
                "missing [prefect] table; add one with account_id and workspace_id (Prefect \
                 Cloud) or api_url (a self-hosted Prefect server)",
            );
            return Prefect {
                api_url: String::new(),
                cloud: None,
                credential: None,
            };
        };
        let table = raw.span();
        let raw = raw.get_ref();
        let dir = spec_path.parent().unwrap_or(Path::new(""));
        // Both variables hold secrets: `${...}` on them anywhere would leak them in plain text.
        let key = self.credential_source(
            &raw.api_key_env,
            &raw.api_key_file,
            &p,
            ("api_key_env", "api_key_file"),
            dir,
        );
        let auth = self.credential_source(
            &raw.auth_string_env,
            &raw.auth_string_file,
            &p,
            ("auth_string_env", "auth_string_file"),
            dir,
        );
        let ids_given = raw.account_id.is_some() || raw.workspace_id.is_some();
        let (api_url, cloud) = match &raw.api_url {
            Some(url) if ids_given => {
                self.report(
                    Some(url.span()),
                    &p.key("api_url"),
                    "api_url and account_id/workspace_id are exclusive: give account_id and \
                     workspace_id for Prefect Cloud, or api_url for a self-hosted server",
                );
                (String::new(), None)
            }
            // Credentials written into the URL itself: `parse` masks the value in the
            // snippet (from an environment variable, the snippet shows only `${…}`).
            Some(url) if api_url_credentials(url.get_ref()).is_err() => {
                let message = api_url_credentials(url.get_ref()).unwrap_err();
                self.report(Some(url.span()), &p.key("api_url"), message);
                (String::new(), None)
            }
            Some(url) => {
                let url = self.string(Some(url), &p.key("api_url"), String::new(), api_url);
                let url = url.trim_end_matches('/').to_owned();
                let cloud = cloud_workspace(&url);
                (url, cloud)
            }
            None => {
                if !ids_given {
                    self.report(
                        Some(table.clone()),
                        &p,
                        "[prefect] needs account_id and workspace_id (Prefect Cloud) or api_url \
                         (a self-hosted Prefect server)",
                    );
                }
                let account_id =
                    self.required(&raw.account_id, &p.key("account_id"), table.clone(), uuid);
                let workspace_id =
                    self.required(&raw.workspace_id, &p.key("workspace_id"), table, uuid);
                let cloud = CloudWorkspace {
                    account_id,
                    workspace_id,
                };
                (cloud_url(&cloud), Some(cloud))
            }
        };
        let auth_key = p.key(if raw.auth_string_env.is_some() {
            "auth_string_env"
        } else {
            "auth_string_file"
        });
        let credential = match (key, auth) {
            (Some(_), Some((auth_span, _))) => {
                self.report(
                    Some(auth_span),
                    &auth_key,
                    "set either an API key (api_key_env/api_key_file) or an auth string \
                     (auth_string_env/auth_string_file), not both: Prefect answers 401 to a \
                     client that sends both",
                );
                None
            }
            (None, Some((span, source))) => {
                if cloud.is_some() {
                    self.report(
                        Some(span),
                        &auth_key,
                        "Prefect Cloud authenticates with an API key, not an auth string; use \
                         api_key_env or api_key_file (auth strings are for a self-hosted server)",
                    );
                }
                Some(Credential {
                    kind: CredentialKind::AuthString,
                    source,
                })
            }
            (Some((_, source)), None) => Some(Credential {
                kind: CredentialKind::ApiKey,
                source,
            }),
            // Prefect Cloud always needs a key; a self-hosted server may have no auth at all.
            (None, None) => cloud.as_ref().map(|_| Credential {
                kind: CredentialKind::ApiKey,
                source: ApiKeySource::Env("PREFECT_API_KEY".to_owned()),
            }),
        };
        Prefect {
            api_url,
            cloud,
            credential,
        }
    }

    /// One credential's source from its `*_env` / `*_file` pair, with the span that set it.
    fn credential_source(
        &mut self,
        env: &Option<Spanned<String>>,
        file: &Option<Spanned<String>>,
        p: &KeyPath,
        (env_key, file_key): (&str, &str),
        dir: &Path,
    ) -> Option<(Range<usize>, ApiKeySource)> {
        if let Some(var) = env {
            let name = self.string(Some(var), &p.key(env_key), String::new(), |name| {
                ensure(is_env_name(name), || {
                    format!("{env_key} \"{name}\" is not an environment variable name")
                })
            });
            if !self.forbidden.contains(&name) {
                self.forbidden.push(name.clone());
            }
            if let Some(file) = file {
                let message = format!("{env_key} and {file_key} are exclusive; keep one of them");
                self.report(Some(file.span()), &p.key(file_key), message);
            }
            return Some((var.span(), ApiKeySource::Env(name)));
        }
        let file = file.as_ref()?;
        let path = self.string(Some(file), &p.key(file_key), String::new(), |_| Ok(()));
        Some((file.span(), ApiKeySource::File(dir.join(path))))
    }

    fn stack(
        &mut self,
        raw: &Spanned<RawStack>,
    ) -> (String, Option<String>, BTreeMap<String, String>) {
        let p = KeyPath::default().key("stack");
        let name = self.required(&raw.get_ref().name, &p.key("name"), raw.span(), stack_name);
        let raw = raw.get_ref();
        let region = raw.region.as_ref().map(|r| {
            self.string(Some(r), &p.key("region"), String::new(), |r| {
                ensure(is_region(r), || {
                    format!("region \"{r}\" does not look like an AWS region (like us-east-1)")
                })
            })
        });
        let tags_path = p.key("tags");
        let yours = MAX_TAGS - OWN_TAGS.len();
        if raw.tags.len() > yours {
            let message = format!(
                "stack.tags has {} tags; AWS allows {MAX_TAGS} on a resource and prefect-ecs adds \
                 up to {} of its own ({}), so at most {yours} can be yours",
                raw.tags.len(),
                OWN_TAGS.len(),
                OWN_TAGS.join(", ")
            );
            self.report(paths::key_span(self.doc, &tags_path.0), &tags_path, message);
        }
        let mut tags = BTreeMap::new();
        let mut lower: HashMap<String, &str> = HashMap::new();
        for (key, value) in &raw.tags {
            let path = tags_path.key(key);
            if let Err(message) = tag_key(key) {
                self.report(paths::key_span(self.doc, &path.0), &path, message);
            }
            // IAM takes a role's tag keys regardless of case: the second would replace the first.
            if let Some(other) = lower.insert(key.to_lowercase(), key) {
                let message = format!(
                    "tag keys \"{other}\" and \"{key}\" differ only in case, which IAM does not \
                     tell apart on a role; keep one"
                );
                self.report(paths::key_span(self.doc, &path.0), &path, message);
            }
            if let Some(text) = self.text(value, &path) {
                if let Err(message) = tag_text(&format!("tag {key}'s value"), &text, 256) {
                    self.report(Some(value.span()), &path, message);
                }
                tags.insert(key.clone(), text);
            }
        }
        (name, region, tags)
    }

    /// IAM role names are unique in an account, ignoring case: two of the stack's alike would
    /// be one role.
    fn distinct_roles(&mut self, p: &KeyPath, roles: &[(&str, Option<&String>, &Text)]) {
        for (j, (key, name, raw)) in roles.iter().enumerate() {
            let Some(name) = name.filter(|n| !n.is_empty()) else {
                continue;
            };
            let same = roles[..j]
                .iter()
                .find(|(_, other, _)| other.is_some_and(|o| o.eq_ignore_ascii_case(name)));
            let Some((other_key, other, other_raw)) = same else {
                continue;
            };
            let other = other.expect("found by its name");
            // At a name the user wrote (two defaults never collide), naming the other.
            let ((key, name, span), (other_key, other, default)) = match (raw, other_raw) {
                (Some(value), _) => (
                    (*key, name, value.span()),
                    (other_key, other, other_raw.is_none()),
                ),
                (None, Some(value)) => ((*other_key, other, value.span()), (key, name, true)),
                (None, None) => continue,
            };
            let how = match (other == name, default) {
                (false, _) => " (ignoring case)",
                (true, true) => " (its default)",
                (true, false) => "",
            };
            let message = format!(
                "IAM role name \"{name}\" is the same as iam.{other_key}'s \"{other}\"{how}; \
                 IAM role names are unique in an account regardless of case, so rename one"
            );
            self.report(Some(span), &p.key(key), message);
        }
    }

    fn network(
        &mut self,
        raw: &RawNetwork,
        stack: &str,
        region: Option<&str>,
        stack_span: Option<Range<usize>>,
    ) -> Network {
        let p = KeyPath::default().key("network");
        if let Some(vpc_id) = &raw.vpc_id {
            return self.existing_network(raw, vpc_id, stack);
        }
        let given = [
            (
                "private_subnet_ids",
                raw.private_subnet_ids.as_ref().map(|l| l.span()),
            ),
            (
                "public_subnet_ids",
                raw.public_subnet_ids.as_ref().map(|l| l.span()),
            ),
            (
                "private_subnet_tags",
                paths::key_span(self.doc, &p.key("private_subnet_tags").0),
            ),
            (
                "public_subnet_tags",
                paths::key_span(self.doc, &p.key("public_subnet_tags").0),
            ),
        ];
        self.refuse(&p, given, |key| {
            let tier = key.split('_').next().unwrap_or_default();
            format!(
                "{key} names subnets of an existing VPC: set vpc_id to that VPC's id, or use \
                 {tier}_subnets for the subnets prefect-ecs creates"
            )
        });
        let vpc_name = self.string(
            raw.vpc_name.as_ref(),
            &p.key("vpc_name"),
            format!("{stack}-vpc"),
            // Only its Name tag holds it, and EC2 takes any character in a tag.
            aws_name("VPC name", 256, |_| true),
        );
        let default_cidr: Ipv4Net = DEFAULT_CIDR.parse().expect("valid default CIDR");
        let vpc = match &raw.cidr {
            Some(cidr) => self.cidr(cidr, &p.key("cidr"), 16..=24),
            None => Some(default_cidr),
        };
        let nat = match &raw.nat {
            None => NatMode::Single,
            Some(nat) => match self.text(nat, &p.key("nat")).as_deref() {
                Some("single") | None => NatMode::Single,
                Some("per-az") => NatMode::PerAz,
                Some("none") => NatMode::None,
                Some(other) => {
                    let message =
                        format!("nat must be \"single\", \"per-az\" or \"none\", not \"{other}\"");
                    self.report(Some(nat.span()), &p.key("nat"), message);
                    NatMode::Single
                }
            },
        };
        let azs = self.zones(raw, region, stack_span);

        let carving = vpc.unwrap_or(default_cidr);
        let carved: Vec<Ipv4Net> = carving
            .subnets((carving.prefix_len() + 4).min(28))
            .expect("a prefix of at most 28 is valid")
            .collect();
        // A zone count out of range is reported by `zones`; subnets per zone would only
        // repeat it (and carving has eight blocks a tier).
        let count = if ZONES.contains(&azs.len()) {
            azs.len()
        } else {
            0
        };
        let public = self.subnets(
            &raw.public_subnets,
            &p.key("public_subnets"),
            count,
            vpc,
            |i| carved[i],
        );
        let private = self.subnets(
            &raw.private_subnets,
            &p.key("private_subnets"),
            count,
            vpc,
            |i| carved[8 + i],
        );
        self.overlaps(public.iter().chain(&private));

        let zones = azs
            .into_iter()
            .zip(public.iter().zip(&private))
            .map(|(az, (public, private))| Zone {
                az,
                public_cidr: public.0,
                private_cidr: private.0,
            })
            .collect();
        let task_subnets = self.task_subnets(raw, nat);
        let endpoints = self.endpoints(&raw.endpoints, &p.key("endpoints"));
        Network {
            vpc_name,
            cidr: carving,
            nat,
            task_subnets,
            zones,
            endpoints,
            existing: None,
        }
    }

    /// `vpc_id`: an existing VPC, read only, and the subnets of it the tasks run in. What
    /// describes a VPC prefect-ecs would create is refused with it, each key named.
    fn existing_network(
        &mut self,
        raw: &RawNetwork,
        vpc_id: &Spanned<String>,
        stack: &str,
    ) -> Network {
        let p = KeyPath::default().key("network");
        let id = self.string(Some(vpc_id), &p.key("vpc_id"), String::new(), |id| {
            aws_id("vpc", id)
        });
        let own: [(&str, Option<Range<usize>>); 7] = [
            ("vpc_name", raw.vpc_name.as_ref().map(|v| v.span())),
            ("cidr", raw.cidr.as_ref().map(|v| v.span())),
            (
                "availability_zones",
                raw.availability_zones.as_ref().map(|v| v.span()),
            ),
            ("az_count", raw.az_count.as_ref().map(|v| v.span())),
            (
                "public_subnets",
                raw.public_subnets.as_ref().map(|v| v.span()),
            ),
            (
                "private_subnets",
                raw.private_subnets.as_ref().map(|v| v.span()),
            ),
            ("task_subnets", raw.task_subnets.as_ref().map(|v| v.span())),
        ];
        self.refuse(&p, own, |key| {
            format!(
                "{key} describes a VPC prefect-ecs creates; with vpc_id the VPC and its subnets \
                 exist already and are only read: remove {key} (the tasks run in \
                 private_subnet_ids, or public_subnet_ids)"
            )
        });
        if let Some(nat) = &raw.nat
            && self.text(nat, &p.key("nat")).as_deref() != Some("none")
        {
            let message = "with vpc_id the VPC's own NAT gateways carry the private subnets' \
                           traffic and prefect-ecs creates none: remove nat (or set \"none\")";
            self.report(Some(nat.span()), &p.key("nat"), message);
        }
        // The subnets: by id or by tags, private or public; exactly one of the four.
        let given: Vec<(&str, Tier, Range<usize>)> = [
            (
                "private_subnet_ids",
                Tier::Private,
                raw.private_subnet_ids.as_ref().map(|l| l.span()),
            ),
            (
                "public_subnet_ids",
                Tier::Public,
                raw.public_subnet_ids.as_ref().map(|l| l.span()),
            ),
            (
                "private_subnet_tags",
                Tier::Private,
                paths::key_span(self.doc, &p.key("private_subnet_tags").0)
                    .filter(|_| !raw.private_subnet_tags.is_empty()),
            ),
            (
                "public_subnet_tags",
                Tier::Public,
                paths::key_span(self.doc, &p.key("public_subnet_tags").0)
                    .filter(|_| !raw.public_subnet_tags.is_empty()),
            ),
        ]
        .into_iter()
        .filter_map(|(key, tier, span)| span.map(|s| (key, tier, s)))
        .collect();
        let (tier, key) = match given.as_slice() {
            [] => {
                let message = "vpc_id needs the subnets of it the workers run in: \
                               private_subnet_ids = [\"subnet-…\", …] (with a route to a NAT \
                               gateway) or public_subnet_ids (with a route to an internet \
                               gateway; each task gets a public IP), or the subnets' tags: \
                               private_subnet_tags = { tier = \"private\" }";
                self.report(Some(vpc_id.span()), &p.key("vpc_id"), message);
                (Tier::Private, "private_subnet_ids")
            }
            [(key, tier, _), rest @ ..] => {
                for (other, _, span) in rest {
                    let message = format!(
                        "give the subnets the tasks run in once: {key} or {other}, not both \
                         (private ones go out through the VPC's NAT, public ones give each task \
                         a public IP)"
                    );
                    self.report(Some(span.clone()), &p.key(other), message);
                }
                (*tier, *key)
            }
        };
        let list = match key {
            "private_subnet_ids" => raw.private_subnet_ids.as_ref(),
            "public_subnet_ids" => raw.public_subnet_ids.as_ref(),
            _ => None,
        };
        let raw_tags = match key {
            "private_subnet_tags" => &raw.private_subnet_tags,
            "public_subnet_tags" => &raw.public_subnet_tags,
            _ => &BTreeMap::new(),
        };
        let mut subnet_tags = BTreeMap::new();
        for (name, value) in raw_tags {
            let path = p.key(key).key(name);
            if let Some(text) = self.text(value, &path) {
                // EC2's filters read `*` and `?` as wildcards: a tag would select others.
                if text.contains(['*', '?']) || name.contains(['*', '?']) {
                    let message = format!(
                        "{key}.{name} = {text:?}: EC2 reads * and ? in a tag filter as \
                         wildcards, which could select subnets never meant; name the tag exactly"
                    );
                    self.report(Some(value.span()), &path, message);
                }
                subnet_tags.insert(name.clone(), text);
            }
        }
        let mut subnet_ids: Vec<String> = Vec::new();
        if let Some(list) = list {
            if list.get_ref().is_empty() || list.get_ref().len() > 16 {
                let message = format!("{key} lists {} subnets; list 1 to 16", list.get_ref().len());
                self.report(Some(list.span()), &p.key(key), message);
            }
            for (i, item) in list.get_ref().iter().enumerate() {
                let path = p.key(key).index(i);
                let Some(subnet) = self.text(item, &path) else {
                    continue;
                };
                if let Err(message) = aws_id("subnet", &subnet) {
                    self.report(Some(item.span()), &path, message);
                } else if subnet_ids.contains(&subnet) {
                    let message = format!("subnet {subnet} is listed twice");
                    self.report(Some(item.span()), &path, message);
                } else {
                    subnet_ids.push(subnet);
                }
            }
        }
        let ep = p.key("endpoints");
        if let Some(s3) = &raw.endpoints.s3
            && self.flag(&raw.endpoints.s3, &ep.key("s3"), false)
        {
            let message = "the S3 gateway endpoint is a route in the subnets' route tables, \
                           and an existing VPC's route tables are not prefect-ecs's to change: \
                           remove s3 (or add the endpoint to the VPC yourself)";
            self.report(Some(s3.span()), &ep.key("s3"), message);
        }
        if let Some(list) = &raw.endpoints.interface
            && !list.get_ref().is_empty()
        {
            let message = "interface endpoints in an existing VPC are not supported yet: their \
                           security group admits the task subnets by CIDR, which prefect-ecs \
                           knows only of the subnets it makes";
            self.report(Some(list.span()), &ep.key("interface"), message);
        }
        Network {
            vpc_name: format!("{stack}-vpc"),
            cidr: DEFAULT_CIDR.parse().expect("valid default CIDR"),
            nat: NatMode::None,
            task_subnets: tier,
            zones: Vec::new(),
            endpoints: Endpoints {
                s3: false,
                interface: Vec::new(),
            },
            existing: Some(ExistingNetwork {
                vpc_id: id,
                subnet_ids,
                subnet_tags,
            }),
        }
    }

    /// `task_subnets`: private by default with a NAT, public without one. Public subnets
    /// behind a NAT would pay for a NAT no task uses.
    fn task_subnets(&mut self, raw: &RawNetwork, nat: NatMode) -> Tier {
        let path = KeyPath::default().key("network").key("task_subnets");
        let default = if nat == NatMode::None {
            Tier::Public
        } else {
            Tier::Private
        };
        let Some(value) = &raw.task_subnets else {
            return default;
        };
        match self.text(value, &path).as_deref() {
            Some("private") => Tier::Private,
            Some("public") if nat != NatMode::None => {
                let message = "task_subnets = \"public\" needs nat = \"none\": with a NAT \
                               gateway the tasks run in the private subnets behind it";
                self.report(Some(value.span()), &path, message);
                default
            }
            Some("public") => Tier::Public,
            None => default,
            Some(other) => {
                let message =
                    format!("task_subnets must be \"private\" or \"public\", not \"{other}\"");
                self.report(Some(value.span()), &path, message);
                default
            }
        }
    }

    fn endpoints(&mut self, raw: &RawEndpoints, p: &KeyPath) -> Endpoints {
        let s3 = self.flag(&raw.s3, &p.key("s3"), true);
        let mut interface: Vec<String> = Vec::new();
        for (i, item) in raw.interface.iter().flat_map(|l| l.get_ref()).enumerate() {
            let path = p.key("interface").index(i);
            let Some(service) = self.text(item, &path) else {
                continue;
            };
            if service == "s3" {
                let message = "\"s3\" is the gateway endpoint, free and on by default \
                               ([network.endpoints] s3 = true); an S3 interface endpoint is not \
                               offered";
                self.report(Some(item.span()), &path, message);
            } else if service == "ecr" {
                let message = "ECR takes two interface endpoints: \"ecr.api\" (the registry's \
                               API) and \"ecr.dkr\" (image pulls)";
                self.report(Some(item.span()), &path, message);
            } else if !INTERFACE_ENDPOINTS.contains(&service.as_str()) {
                let hint = match super::nearest(&service, INTERFACE_ENDPOINTS) {
                    Some(k) => format!("did you mean \"{k}\"?"),
                    None => format!("expected one of: {}", INTERFACE_ENDPOINTS.join(", ")),
                };
                let message = format!("unknown interface endpoint \"{service}\"; {hint}");
                self.report(Some(item.span()), &path, message);
            } else if interface.contains(&service) {
                let message = format!("interface endpoint \"{service}\" is listed twice");
                self.report(Some(item.span()), &path, message);
            } else {
                interface.push(service);
            }
        }
        interface.sort();
        Endpoints { s3, interface }
    }

    /// `nat = "none"` with the tasks in private subnets: nothing reaches the internet, so
    /// every way out the workers need must be inside the VPC. Each missing one is a problem
    /// of its own, at `nat`, saying what would fail and how to fix it.
    fn private_egress(&mut self, spec: &Spec, raw: &RawNetwork, region: Option<&str>) {
        let net = &spec.network;
        // An existing VPC's way out is its own, checked live by `plan` and `verify`.
        if net.nat != NatMode::None || net.task_subnets != Tier::Private || net.existing.is_some() {
            return;
        }
        let path = KeyPath::default().key("network").key("nat");
        let span = raw.nat.as_ref().map(|n| n.span());
        let why = "with nat = \"none\" and task_subnets = \"private\" the tasks have no way \
                   to the internet";
        for w in &spec.workers {
            let image = crate::image::ImageRef::parse(&w.image).ok();
            let ecr = image.as_ref().and_then(|i| i.ecr_region());
            match (ecr, region) {
                (Some(r), Some(region)) if r != region => {
                    let message = format!(
                        "worker \"{}\": its image is in ECR in {r}, which the endpoints of {region} \
                         do not reach; {why}: copy it to ECR in {region}",
                        w.name
                    );
                    self.report(span.clone(), &path, message);
                }
                (Some(_), _) => {}
                (None, _) => {
                    let message = format!(
                        "worker \"{}\": image {} is pulled from outside AWS; {why}: push it to \
                         ECR in the stack's region (reached through the ecr.api, ecr.dkr and S3 \
                         endpoints)",
                        w.name, w.image
                    );
                    self.report(span.clone(), &path, message);
                }
            }
            let plain = image.as_ref().is_some_and(|i| i.is_plain_prefect());
            if w.env.contains_key("EXTRA_PIP_PACKAGES") || plain {
                let what = if plain {
                    "installs prefect-aws with pip at start (a plain Prefect image)"
                } else {
                    "installs EXTRA_PIP_PACKAGES with pip at start"
                };
                let message = format!(
                    "worker \"{}\" {what}, which needs PyPI; {why}: build an image with the \
                     packages in it",
                    w.name
                );
                self.report(span.clone(), &path, message);
            }
        }
        if let Some(why_not) = api_needs_internet(&spec.prefect) {
            let message = format!("{why_not}; {why}: use a NAT gateway (nat = \"single\")");
            self.report(span.clone(), &path, message);
        }
        let mut missing: Vec<&str> = required_endpoints(spec)
            .into_iter()
            .filter(|e| !net.endpoints.interface.iter().any(|i| i == e))
            .collect();
        if !net.endpoints.s3 {
            missing.insert(0, "s3 (s3 = true: ECR keeps image layers in S3)");
        }
        if !missing.is_empty() {
            let message = format!(
                "{why} but through VPC endpoints, and these are missing from \
                 [network.endpoints]: {}",
                missing.join(", ")
            );
            self.report(span, &path, message);
        }
    }

    fn zones(
        &mut self,
        raw: &RawNetwork,
        region: Option<&str>,
        stack_span: Option<Range<usize>>,
    ) -> Vec<String> {
        let p = KeyPath::default().key("network");
        let Some(list) = &raw.availability_zones else {
            let count = self.number(&raw.az_count, &p.key("az_count"), 3, 1..=6);
            let Some(region) = region else {
                let span = raw.az_count.as_ref().map(|c| c.span()).or(stack_span);
                let message = "cannot name the availability zones: no region is known; set \
                               [stack] region, configure an AWS region, or list [network] \
                               availability_zones"
                    .to_owned();
                self.report(span, &p.key("availability_zones"), message);
                return Vec::new();
            };
            return (b'a'..)
                .take(count.min(6) as usize)
                .map(|l| format!("{region}{}", l as char))
                .collect();
        };
        let path = p.key("availability_zones");
        if !ZONES.contains(&list.get_ref().len()) {
            let message = format!(
                "availability_zones lists {} zones; list 1 to 6",
                list.get_ref().len()
            );
            self.report(Some(list.span()), &path, message);
        }
        if let Some(count) = self.resolve(&raw.az_count, &p.key("az_count"))
            && *count.get_ref() as usize != list.get_ref().len()
        {
            let message = format!(
                "az_count = {} disagrees with the {} availability_zones listed; remove az_count",
                count.get_ref(),
                list.get_ref().len()
            );
            self.report(Some(count.span()), &p.key("az_count"), message);
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut zones = Vec::new();
        for (i, az) in list.get_ref().iter().enumerate() {
            let path = path.index(i);
            let Some(name) = self.text(az, &path) else {
                continue;
            };
            let region = region.filter(|r| is_region(r));
            if let Some(first) = seen.get(&name) {
                let message = format!(
                    "duplicate availability zone \"{name}\" (also availability_zones[{first}])"
                );
                self.report(Some(az.span()), &path, message);
            } else if is_region(&name) {
                let message = format!(
                    "availability zone \"{name}\" is a region, not a zone in it; name a zone, \
                     like {name}a"
                );
                self.report(Some(az.span()), &path, message);
            } else if let Some(region) = region.filter(|r| !name.starts_with(r)) {
                let message = format!("availability zone \"{name}\" is not in region {region}");
                self.report(Some(az.span()), &path, message);
            } else if let Some(region) = region.filter(|r| !is_zone_suffix(&name[r.len()..])) {
                let message = format!(
                    "availability zone \"{name}\" is not a zone name of region {region} (like \
                     {region}a)"
                );
                self.report(Some(az.span()), &path, message);
            }
            seen.entry(name.clone()).or_insert(i);
            zones.push(name);
        }
        zones
    }

    fn cidr(
        &mut self,
        value: &Spanned<String>,
        path: &KeyPath,
        prefixes: RangeInclusive<u8>,
    ) -> Option<Ipv4Net> {
        let text = self.text(value, path)?;
        let message = match text.parse::<Ipv4Net>() {
            Err(_) => format!("invalid CIDR \"{text}\"; write an IPv4 block like 10.0.0.0/16"),
            Ok(net) if net.addr() != net.network() => {
                format!(
                    "CIDR {text} has host bits set; did you mean {}?",
                    net.trunc()
                )
            }
            Ok(net) if !prefixes.contains(&net.prefix_len()) => format!(
                "CIDR {text} has prefix length /{}; use /{} to /{}",
                net.prefix_len(),
                prefixes.start(),
                prefixes.end()
            ),
            Ok(net) => return Some(net),
        };
        self.report(Some(value.span()), path, message);
        None
    }

    /// The subnets of one kind, one per zone; carved out of the VPC when not listed.
    fn subnets(
        &mut self,
        raw: &Option<Spanned<Vec<Spanned<String>>>>,
        path: &KeyPath,
        zones: usize,
        vpc: Option<Ipv4Net>,
        carve: impl Fn(usize) -> Ipv4Net,
    ) -> Vec<(Ipv4Net, Option<Range<usize>>, KeyPath)> {
        let Some(list) = raw else {
            return (0..zones)
                .map(|i| (carve(i), None, path.index(i)))
                .collect();
        };
        if zones > 0 && list.get_ref().len() != zones {
            let message = format!(
                "{} lists {} subnets but there are {zones} availability zones; give one per zone",
                path.last_key(),
                list.get_ref().len()
            );
            self.report(Some(list.span()), path, message);
        }
        let mut out = Vec::new();
        for (i, value) in list.get_ref().iter().enumerate() {
            let path = path.index(i);
            let Some(net) = self.cidr(value, &path, 16..=28) else {
                continue;
            };
            if let Some(vpc) = vpc.filter(|vpc| !vpc.contains(&net)) {
                let message = format!("subnet {net} is outside the VPC CIDR {vpc}");
                self.report(Some(value.span()), &path, message);
            }
            out.push((net, Some(value.span()), path));
        }
        out
    }

    fn overlaps<'s>(
        &mut self,
        subnets: impl Iterator<Item = &'s (Ipv4Net, Option<Range<usize>>, KeyPath)>,
    ) {
        // Two lists of a subnet per zone, and a little more: a list longer than that is
        // reported for its length already, and comparing all of a huge one is quadratic.
        let subnets: Vec<_> = subnets.take(4 * ZONES.end()).collect();
        // Only the first overlap of each subnet: one misplaced block can overlap all others.
        for (j, (b, b_span, b_path)) in subnets.iter().enumerate() {
            let overlapping = subnets[..j]
                .iter()
                .find(|(a, _, _)| a.contains(&b.network()) || b.contains(&a.network()));
            if let Some((a, a_span, a_path)) = overlapping {
                // Point at a listed subnet: a carved one has no place in the file.
                let ((this, span, path), (other, _, other_path)) = match b_span {
                    Some(_) => ((b, b_span, b_path), (a, a_span, a_path)),
                    None => ((a, a_span, a_path), (b, b_span, b_path)),
                };
                let message = format!("subnet {this} overlaps {other} ({other_path})");
                self.report(span.clone(), path, message);
            }
        }
    }

    fn secret(&mut self, raw: &RawSecret, stack: &str, region: Option<&str>) -> Secret {
        let p = KeyPath::default().key("secret");
        let arn = raw.arn.as_ref().map(|arn| {
            self.string(Some(arn), &p.key("arn"), String::new(), |arn| {
                secret_arn(arn, region)
            })
        });
        let kms_key_id = raw.kms_key_id.as_ref().map(|k| {
            self.string(Some(k), &p.key("kms_key_id"), String::new(), |arn| {
                kms_key_arn(arn, region)
            })
        });
        if let Some(arn) = &arn {
            let given = [
                ("name", raw.name.as_ref().map(|n| n.span())),
                (
                    "recovery_window_days",
                    raw.recovery_window_days.as_ref().map(|n| n.span()),
                ),
            ];
            self.refuse(&p, given, |key| {
                format!(
                    "{key} is of a secret prefect-ecs makes; with arn the secret exists already \
                     and is never changed nor deleted: remove {key}"
                )
            });
            // Its name: the ARN's last part without Secrets Manager's six-character suffix.
            let last = arn.rsplit(':').next().unwrap_or_default();
            let name = last
                .rsplit_once('-')
                .filter(|(_, suffix)| suffix.len() == 6)
                .map_or(last, |(name, _)| name);
            return Secret {
                arn: Some(arn.clone()),
                name: name.to_owned(),
                recovery_window_days: None,
                kms_key_id,
            };
        }
        Secret {
            arn: None,
            name: self.string(
                raw.name.as_ref(),
                &p.key("name"),
                format!("{stack}-prefect-api-key"),
                secret_name,
            ),
            recovery_window_days: raw.recovery_window_days.as_ref().map(|_| {
                self.number(
                    &raw.recovery_window_days,
                    &p.key("recovery_window_days"),
                    0,
                    7..=30,
                )
            }),
            kms_key_id,
        }
    }

    fn retention(&mut self, raw: &Number, path: &KeyPath) -> u32 {
        let Some(days) = self.resolve(raw, path) else {
            return 30;
        };
        if !RETENTION_DAYS.contains(days.get_ref()) {
            let message = format!(
                "retention_days = {} is not a CloudWatch retention (allowed: {})",
                days.get_ref(),
                join(&RETENTION_DAYS)
            );
            self.report(Some(days.span()), path, message);
        }
        *days.get_ref()
    }

    /// `stack`: the stack's name, which unnamed pools (and, in an environment, the task
    /// families, which an account shares across stacks) are named after.
    fn workers(
        &mut self,
        raw: Option<&Spanned<Vec<Spanned<RawWorker>>>>,
        stack: &str,
        in_env: bool,
    ) -> Vec<Worker> {
        let p = KeyPath::default().key("worker");
        let list = match raw {
            Some(list) if !list.get_ref().is_empty() => list.get_ref(),
            other => {
                let message =
                    "no [[worker]] defined; add at least one with name and work_pool".to_owned();
                self.report(other.map(|l| l.span()), &p, message);
                return Vec::new();
            }
        };
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut families: HashMap<String, usize> = HashMap::new();
        let mut workers = Vec::new();
        for (i, raw) in list.iter().enumerate() {
            let p = p.index(i);
            let table = raw.span();
            let raw = raw.get_ref();
            let name = self.required(&raw.name, &p.key("name"), table.clone(), worker_name);
            if let (Some(first), Some(value)) = (seen.get(&name), &raw.name) {
                let message = format!(
                    "duplicate worker name \"{name}\" (also worker[{first}].name); worker names must be unique"
                );
                self.report(Some(value.span()), &p.key("name"), message);
            }
            seen.entry(name.clone()).or_insert(i);
            let work_pool = self.string(
                raw.work_pool.as_ref(),
                &p.key("work_pool"),
                format!("{stack}-{name}"),
                work_pool,
            );
            let image = self.string(
                raw.image.as_ref(),
                &p.key("image"),
                "prefecthq/prefect:3-latest".to_owned(),
                image,
            );
            let user_pins_aws = raw
                .env
                .get("EXTRA_PIP_PACKAGES")
                .is_some_and(|v| crate::graph::pinned_prefect_aws(v.get_ref()).is_some());
            if let Some(version) = crate::graph::prefect_too_old(&image)
                && !user_pins_aws
            {
                let (major, minor) = crate::graph::PREFECT_AWS_NEEDS;
                let message = format!(
                    "image \"{image}\" is Prefect {version}, and the prefect-aws the work pool's \
                     template is made for ({}) requires Prefect {major}.{minor} or later: use a \
                     Prefect {major} image such as prefecthq/prefect:3-latest, or pin a \
                     prefect-aws for Prefect {version} yourself in env EXTRA_PIP_PACKAGES",
                    crate::graph::PREFECT_AWS
                );
                self.report(
                    raw.image.as_ref().map(|i| i.span()),
                    &p.key("image"),
                    message,
                );
            }
            let (cpu, memory) = self.size(raw, &p, table);
            let desired_count = self.number(&raw.desired_count, &p.key("desired_count"), 1, 0..=10);
            let architecture = match raw.architecture.as_ref() {
                None => Arch::X86_64,
                Some(a) => match self.text(a, &p.key("architecture")).as_deref() {
                    Some("x86_64") | None => Arch::X86_64,
                    Some("arm64") => Arch::Arm64,
                    Some(other) => {
                        let message = format!(
                            "architecture must be \"x86_64\" or \"arm64\" (Fargate's two), not \
                             \"{other}\""
                        );
                        self.report(Some(a.span()), &p.key("architecture"), message);
                        Arch::X86_64
                    }
                },
            };
            let mut env = BTreeMap::new();
            let mut size = 0;
            for (key, value) in &raw.env {
                let path = p.key("env").key(key);
                if key.is_empty() || key.contains(['=', '\0']) {
                    let message = format!(
                        "environment variable name {key:?} cannot be set in a container (empty, \
                         or holding = or NUL)"
                    );
                    self.report(paths::key_span(self.doc, &path.0), &path, message);
                }
                if RESERVED_ENV.contains(&key.as_str()) {
                    let message = format!(
                        "{} sets {key}, which prefect-ecs sets itself; remove it",
                        p.key("env")
                    );
                    self.report(paths::key_span(self.doc, &path.0), &path, message);
                }
                if let Some(value) = self.text(value, &path) {
                    size += key.len() + value.len();
                    env.insert(key.clone(), value);
                }
            }
            // The task definition holds the environment, and ECS takes one of at most 64 KiB.
            if size > MAX_ENV_BYTES {
                let path = p.key("env");
                let message = format!(
                    "{path} holds {} KiB; the task definition that carries it may be at most 64 \
                     KiB (ECS), so keep the environment under {} KiB",
                    size / 1024,
                    MAX_ENV_BYTES / 1024
                );
                self.report(paths::key_span(self.doc, &path.0), &path, message);
            }
            let derived = match in_env {
                true => format!("{stack}-{name}"),
                false => name.clone(),
            };
            let family = self.string(
                raw.family.as_ref(),
                &p.key("family"),
                derived,
                aws_name("task definition family", 255, |ch| "_-".contains(ch)),
            );
            if let Some(first) = families.insert(family.clone(), i)
                && let Some(value) = &raw.family
            {
                let message = format!(
                    "task definition family \"{family}\" is also worker[{first}]'s; each \
                     worker registers its own family"
                );
                self.report(Some(value.span()), &p.key("family"), message);
            }
            workers.push(Worker {
                name,
                family,
                work_pool,
                image,
                cpu,
                memory,
                desired_count,
                env,
                architecture,
            });
        }
        // A pool's flow runs run on one architecture: its workers must agree on it.
        let mut arch_of: BTreeMap<&str, (usize, Arch)> = BTreeMap::new();
        for (i, w) in workers.iter().enumerate() {
            let (first, arch) = *arch_of.entry(&w.work_pool).or_insert((i, w.architecture));
            if arch != w.architecture {
                let path = p.index(i).key("architecture");
                let message = format!(
                    "worker \"{}\" is {} but worker[{first}] of the same pool \"{}\" is {}: a \
                     pool's flow runs run on one architecture; give the worker its own pool",
                    w.name,
                    w.architecture.as_str(),
                    w.work_pool,
                    arch.as_str()
                );
                let span = list
                    .get(i)
                    .and_then(|r| r.get_ref().architecture.as_ref())
                    .map(|a| a.span());
                self.report(span, &path, message);
            }
        }
        workers
    }

    /// One entry per pool the workers name; `[[work_pool]]` tables only add settings to those.
    fn work_pools(
        &mut self,
        raw: Option<&Spanned<Vec<Spanned<RawWorkPool>>>>,
        workers: &[Worker],
    ) -> Vec<WorkPool> {
        let mut pools: BTreeMap<String, WorkPool> = workers
            .iter()
            .map(|w| {
                let pool = WorkPool {
                    name: w.work_pool.clone(),
                    adopt: false,
                    architecture: w.architecture,
                };
                (w.work_pool.clone(), pool)
            })
            .collect();
        let p = KeyPath::default().key("work_pool");
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, entry) in raw
            .map(|l| l.get_ref().as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let p = p.index(i);
            let table = entry.span();
            let entry = entry.get_ref();
            let name = self.required(&entry.name, &p.key("name"), table.clone(), work_pool);
            // A name Prefect refuses is reported already: whether a worker uses it is moot.
            if work_pool(&name).is_err() {
                continue;
            }
            if let Some(first) = seen.insert(name.clone(), i) {
                let message = format!(
                    "work pool \"{name}\" is configured twice (also work_pool[{first}]); merge the two tables"
                );
                self.report(
                    entry.name.as_ref().map(|n| n.span()),
                    &p.key("name"),
                    message,
                );
                continue;
            }
            match pools.get_mut(&name) {
                Some(pool) => pool.adopt = self.flag(&entry.adopt, &p.key("adopt"), false),
                None if !workers.is_empty() => {
                    let message = format!(
                        "work_pool[{i}] configures pool \"{name}\", which no worker uses; set it as a worker's work_pool or remove the table"
                    );
                    self.report(
                        entry.name.as_ref().map(|n| n.span()),
                        &p.key("name"),
                        message,
                    );
                }
                None => {}
            }
        }
        pools.into_values().collect()
    }

    fn size(&mut self, raw: &RawWorker, p: &KeyPath, table: Range<usize>) -> (u32, u32) {
        let raw_cpu = self.resolve(&raw.cpu, &p.key("cpu"));
        let raw_memory = self.resolve(&raw.memory, &p.key("memory"));
        let cpu = raw_cpu.as_ref().map_or(512, |c| *c.get_ref());
        let memory = raw_memory.as_ref().map_or(1024, |m| *m.get_ref());
        // A size whose value was wrong is reported already; checking the other against a
        // default the user never chose would only mislead.
        let wrong = |value: &Option<Spanned<u32>>, key: &str| {
            value.is_none() && self.dropped.contains(&p.key(key).to_string())
        };
        if raw_cpu.is_none() && raw.cpu.is_some()
            || raw_memory.is_none() && raw.memory.is_some()
            || wrong(&raw_cpu, "cpu")
            || wrong(&raw_memory, "memory")
        {
            return (cpu, memory);
        }
        let cpu_span = raw_cpu.as_ref().map_or(table, |c| c.span());
        let Some(allowed) = fargate_memory(cpu) else {
            let message = format!(
                "cpu = {cpu} is not a Fargate size (allowed: {})",
                join(&FARGATE_CPU)
            );
            self.report(Some(cpu_span), &p.key("cpu"), message);
            return (cpu, memory);
        };
        if !allowed.contains(&memory) {
            let allowed = join(&allowed);
            match &raw_memory {
                Some(value) => {
                    let message = format!(
                        "memory = {memory} is not valid with cpu = {cpu} (allowed: {allowed})"
                    );
                    self.report(Some(value.span()), &p.key("memory"), message);
                }
                None => {
                    let message = format!(
                        "cpu = {cpu} needs memory set: the default 1024 is not valid with it \
                         (allowed: {allowed})"
                    );
                    self.report(Some(cpu_span), &p.key("cpu"), message);
                }
            }
        }
        (cpu, memory)
    }
}

fn join(numbers: &[u32]) -> String {
    let numbers: Vec<String> = numbers.iter().map(u32::to_string).collect();
    numbers.join(", ")
}

fn ensure(valid: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if valid { Ok(()) } else { Err(message()) }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `^[a-z]{2}(-[a-z]+)+-\d$`
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let lower = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    parts.len() >= 3
        && parts[0].len() == 2
        && lower(parts[0])
        && parts[1..parts.len() - 1].iter().all(|p| lower(p))
        && parts[parts.len() - 1].len() == 1
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

/// What follows the region in a zone's name: a letter (`us-east-1a`), or a Local Zone's
/// `-lax-1a`.
fn is_zone_suffix(rest: &str) -> bool {
    let local = rest.strip_prefix('-').is_some_and(|r| {
        !r.is_empty()
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    local || rest.len() == 1 && rest.bytes().all(|b| b.is_ascii_lowercase())
}

fn is_dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// The Prefect Cloud API URL of a workspace.
pub fn cloud_url(w: &CloudWorkspace) -> String {
    format!(
        "https://api.prefect.cloud/api/accounts/{}/workspaces/{}",
        w.account_id, w.workspace_id
    )
}

/// The workspace a Prefect Cloud API URL names.
fn cloud_workspace(url: &str) -> Option<CloudWorkspace> {
    let rest = url.strip_prefix("https://api.prefect.cloud/api/accounts/")?;
    let (account_id, rest) = rest.split_once('/')?;
    let workspace_id = rest.strip_prefix("workspaces/")?;
    (uuid(account_id).is_ok() && uuid(workspace_id).is_ok()).then(|| CloudWorkspace {
        account_id: account_id.to_owned(),
        workspace_id: workspace_id.to_owned(),
    })
}

/// A URL with `user:password@` in it; the message does not echo it.
pub(super) fn api_url_credentials(url: &str) -> Result<(), String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    ensure(
        !rest.split('/').next().unwrap_or_default().contains('@'),
        || {
            "api_url must not hold credentials (user:password@host): the URL goes into the task \
         definition in plain text; put the auth string in auth_string_env or auth_string_file"
                .to_owned()
        },
    )
}

fn api_url(url: &str) -> Result<(), String> {
    // First: every other message quotes the URL.
    api_url_credentials(url)?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!(
            "api_url \"{url}\" must start with https:// or http://"
        ));
    }
    let parsed = url::Url::parse(url).ok().filter(|u| {
        u.host_str().is_some_and(|h| !h.is_empty()) && !url.contains(char::is_whitespace)
    });
    let Some(parsed) = parsed else {
        return Err(format!("api_url \"{url}\" is not a URL"));
    };
    let path = parsed.path();
    ensure(
        path.trim_end_matches('/').ends_with("/api") || path.contains("/api/"),
        || {
            format!(
                "api_url \"{url}\" does not look like a Prefect API URL, which ends in /api \
                 (e.g. http://prefect.internal:4200/api)"
            )
        },
    )
}

fn stack_name(name: &str) -> Result<(), String> {
    let valid = name.len() <= 28
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ensure(valid, || {
        format!(
            "invalid stack name \"{name}\": use 1 to 28 lower-case letters, digits and hyphens, \
             starting with a letter"
        )
    })
}

/// An EC2 id: `<prefix>-` and 8 or 17 lower-case hex digits.
fn aws_id(prefix: &str, id: &str) -> Result<(), String> {
    let hex = id.strip_prefix(prefix).and_then(|r| r.strip_prefix('-'));
    let valid = hex.is_some_and(|h| {
        matches!(h.len(), 8 | 17)
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    ensure(valid, || {
        format!("\"{id}\" is not a {prefix} id ({prefix}- and 8 or 17 hex digits)")
    })
}

/// An AWS account id: twelve digits.
fn account_id(id: &str) -> Result<(), String> {
    ensure(
        id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()),
        || format!("account_id \"{id}\" is not an AWS account id (twelve digits)"),
    )
}

fn uuid(id: &str) -> Result<(), String> {
    // The hyphenated form only: it is the one Prefect Cloud's URLs use.
    let valid = ::uuid::Uuid::try_parse(id)
        .is_ok_and(|u| u.hyphenated().to_string() == id.to_ascii_lowercase());
    ensure(valid, || {
        format!("\"{id}\" is not a UUID; copy the id from the Prefect Cloud URL")
    })
}

fn dns_name(name: &str) -> Result<(), String> {
    let valid = name.len() <= 253 && name.split('.').all(is_dns_label);
    ensure(valid, || {
        format!(
            "namespace \"{name}\" is not a DNS name: use dot-separated labels of lower-case \
             letters, digits and hyphens"
        )
    })
}

fn worker_name(name: &str) -> Result<(), String> {
    ensure(is_dns_label(name), || {
        format!(
            "invalid worker name \"{name}\": it names the Cloud Map service, so use 1 to 63 \
             lower-case letters, digits and hyphens, not starting or ending with a hyphen"
        )
    })
}

fn work_pool(pool: &str) -> Result<(), String> {
    if pool.is_empty() {
        Err("work_pool must not be empty".to_owned())
    } else if pool.trim_matches([' ', '\'', '"']).is_empty() {
        // Prefect strips spaces and quotes before its non-empty check.
        Err(format!(
            "work pool \"{pool}\" is only spaces and quotes, which Prefect refuses as a name"
        ))
    } else if let Some(c) = pool.chars().find(|c| "/%&><".contains(*c)) {
        Err(format!(
            "work pool \"{pool}\" contains {c:?}, which Prefect refuses in a name (/ % & > <)"
        ))
    } else if pool.to_ascii_lowercase().starts_with("prefect") {
        Err(format!(
            "work pool \"{pool}\" starts with \"prefect\", which Prefect reserves; rename it"
        ))
    } else {
        Ok(())
    }
}

fn role_name(name: &str) -> Result<(), String> {
    aws_name("IAM role name", 64, |c| "+=,.@_-".contains(c))(name)
}

fn secret_name(name: &str) -> Result<(), String> {
    aws_name("secret name", 512, |c| "/_+=.@-".contains(c))(name)?;
    // Secrets Manager appends "-" and 6 random characters to ARNs; a name that already ends
    // like that makes partial-ARN lookups ambiguous.
    match name.len().checked_sub(7).map(|i| name.as_bytes()[i]) {
        Some(b'-') => Err(format!(
            "secret name \"{name}\" ends with a hyphen and 6 characters, which AWS confuses \
             with its own ARN suffix; change the ending"
        )),
        _ => Ok(()),
    }
}

/// `extra` says which characters besides ASCII letters and digits AWS accepts.
fn aws_name(
    what: &'static str,
    max: usize,
    extra: fn(char) -> bool,
) -> impl Fn(&str) -> Result<(), String> {
    move |name| {
        let len = name.chars().count();
        if len == 0 {
            Err(format!("{what} must not be empty"))
        } else if len > max {
            Err(format!(
                "{what} \"{name}\" is {len} characters long; the limit is {max}"
            ))
        } else if let Some(c) = name
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || extra(c)))
        {
            Err(format!(
                "{what} \"{name}\" contains {c:?}, which AWS rejects"
            ))
        } else {
            Ok(())
        }
    }
}

fn tag_key(key: &str) -> Result<(), String> {
    let lower = key.to_ascii_lowercase();
    if key.is_empty() {
        Err("tag key must not be empty".to_owned())
    } else if lower.starts_with("aws:") || lower.starts_with("prefect-ecs:") {
        Err(format!(
            "tag key \"{key}\" uses a reserved prefix (\"aws:\" belongs to AWS, \
             \"prefect-ecs:\" to this tool); rename it"
        ))
    } else if key == "Name" {
        Err(
            "tag key \"Name\" is prefect-ecs's: it names each EC2 resource (the VPC's is \
             [network] vpc_name); rename it"
                .to_owned(),
        )
    } else {
        tag_text(&format!("tag key \"{}\"", shorten(key)), key, 128)
    }
}

/// A tag's text as every tagged service takes it: at most `max` characters, and only those
/// IAM's and CloudWatch Logs' APIs accept (`[\p{L}\p{Z}\p{N}_.:/=+\-@]`), the strictest of
/// them; EC2, ECS, Secrets Manager and Cloud Map accept at least these.
fn tag_text(what: &str, text: &str, max: usize) -> Result<(), String> {
    let len = text.chars().count();
    let allowed = |c: char| {
        c.is_alphanumeric() || c.is_whitespace() && !c.is_control() || "_.:/=+-@".contains(c)
    };
    if len > max {
        Err(format!("{what} is {len} characters long; AWS allows {max}"))
    } else if let Some(c) = text.chars().find(|&c| !allowed(c)) {
        Err(format!(
            "{what} contains {c:?}, which IAM and CloudWatch Logs refuse in a tag (they take \
             letters, digits, spaces and _ . : / = + - @), and the stack's tags go on its roles \
             and log group too"
        ))
    } else {
        Ok(())
    }
}

fn image(image: &str) -> Result<(), String> {
    let len = image.chars().count();
    if image.is_empty() {
        Err("image must not be empty".to_owned())
    } else if len > 255 {
        Err(format!(
            "image \"{}\" is {len} characters long; ECS allows 255",
            shorten(image)
        ))
    } else if image.contains(char::is_whitespace) {
        Err(format!(
            "image \"{image}\" contains a space, which no image reference can"
        ))
    } else {
        crate::image::ImageRef::parse(image)
            .map(|_| ())
            .map_err(|e| format!("image \"{image}\" is not a reference ECS can pull: {e}"))
    }
}

fn log_group(name: &str) -> Result<(), String> {
    aws_name("log group name", 512, |ch| "._/#-".contains(ch))(name)?;
    ensure(!name.starts_with("aws/"), || {
        format!(
            "log group name \"{name}\" starts with \"aws/\", which CloudWatch Logs reserves \
             for AWS; rename it"
        )
    })
}

/// At most 40 characters of `text`, to quote a value too long to quote whole.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
