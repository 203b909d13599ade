//! The plan as a document: [`PlanDoc`] is the versioned JSON schema (`plan --json`, the saved
//! plan file, `show`) and the one thing the human and Markdown renderers read. It is built from a
//! [`Plan`] once; secret values never reach it because `Plan` only carries them as
//! [`SecretValue`](crate::secret::SecretValue), which this module never touches. Pure.

pub mod human;
pub mod markdown;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::diff::normalize;
use crate::model::{UNKNOWN, as_reference, contains_unknown, is_unknown};
use crate::plan::{self, Plan};

impl CostDoc {
    /// The cost in a few lines, for the end of a human plan.
    pub fn lines(&self) -> Vec<String> {
        use crate::cost::dollars;
        let (Some(as_of), Some(before), Some(after)) =
            (&self.prices_as_of, self.before, self.after)
        else {
            return vec![format!(
                "Monthly cost: no prices for {} in prefect-ecs's table (crates/core/prices/aws.toml).",
                self.region
            )];
        };
        let delta = after - before;
        let change = if delta.abs() < 0.005 {
            "unchanged".to_owned()
        } else if delta > 0.0 {
            format!("+{}", dollars(delta))
        } else {
            format!("-{}", dollars(-delta))
        };
        let mut out = vec![format!(
            "Monthly cost in {}: {} now, {} after ({change}).",
            self.region,
            dollars(before),
            dollars(after)
        )];
        let width = self
            .items
            .iter()
            .map(|i| i.address.len())
            .max()
            .unwrap_or(0);
        for i in &self.items {
            out.push(format!(
                "  {:>9}  {:<width$}  {}",
                dollars(i.monthly),
                i.address,
                i.what
            ));
        }
        if !self.usage.is_empty() {
            out.push(format!("  Depends on usage: {}.", self.usage.join("; ")));
        }
        out.push(format!("  Prices: {}, as of {as_of}.", crate::cost::SOURCE));
        out
    }
}

/// Bumped on any change a consumer could notice (a field renamed, removed or re-typed).
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanDoc {
    pub format_version: u32,
    pub stack: String,
    pub summary: Summary,
    /// Every change, no-ops left out: desired resources in creation order, then deletions.
    pub changes: Vec<ChangeDoc>,
    /// `--target` addresses: the plan holds only them, what they need and what must change
    /// with them. Absent for a whole plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// `--replace` addresses. Absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace: Vec<String>,
    /// How many changes `--target` left out. Absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub left_out: usize,
    /// The stack's monthly cost before and after (issue 14). Absent when not computed (a plan
    /// rendered without its region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostDoc>,
    /// What the plan acts on: environment, account, region, Prefect workspace (issue 13).
    /// Absent when not known (a plan computed without AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// What the stack uses but does not own (an existing VPC and its subnets, cluster, secret:
    /// `vpc vpc-…`, `subnet subnet-…`, `cluster arn:…`, `secret arn:…`), read only. Absent
    /// when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub existing: Vec<String>,
}

/// What a plan acts on, named in the first line of every rendering of it; a saved plan keeps
/// it, and `apply FILE` refuses to run it on anything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The spec file's environment (`--env`), when it has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The AWS account (STS); `None` when not asked.
    pub account: Option<String>,
    pub region: String,
    /// The Prefect workspace the pools are managed in: `accounts/<id>/workspaces/<id>` on
    /// Prefect Cloud, the API URL of a self-hosted server.
    pub workspace: String,
}

impl Target {
    pub fn new(spec: &crate::spec::Spec, account: Option<String>, region: &str) -> Target {
        let workspace = match &spec.prefect.cloud {
            Some(c) => format!("accounts/{}/workspaces/{}", c.account_id, c.workspace_id),
            None => spec.prefect.api_url.clone(),
        };
        Target {
            env: spec.env.clone(),
            account,
            region: region.to_owned(),
            workspace,
        }
    }

    /// `stack "team-prod" (env prod) in account 123456789012, us-east-1, Prefect workspace …`
    pub fn describe(&self, stack: &str) -> String {
        let env = self
            .env
            .as_ref()
            .map(|e| format!(" (env {e})"))
            .unwrap_or_default();
        let account = self
            .account
            .as_ref()
            .map(|a| format!(" in account {a},"))
            .unwrap_or_else(|| " in".into());
        format!(
            "stack \"{stack}\"{env}{account} {}, Prefect workspace {}",
            self.region, self.workspace
        )
    }

    /// How `self` (a saved plan's) and `now` differ, one line per field.
    pub fn differences(&self, now: &Target) -> Vec<String> {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        let mut out = Vec::new();
        if self.env != now.env {
            out.push(format!(
                "environment: planned for {}, now {}",
                show(&self.env),
                show(&now.env)
            ));
        }
        if self.account.is_some() && now.account.is_some() && self.account != now.account {
            out.push(format!(
                "AWS account: planned for {}, now {}",
                show(&self.account),
                show(&now.account)
            ));
        }
        if self.region != now.region {
            out.push(format!(
                "region: planned for {}, now {}",
                self.region, now.region
            ));
        }
        if self.workspace != now.workspace {
            out.push(format!(
                "Prefect workspace: planned for {}, now {}",
                self.workspace, now.workspace
            ));
        }
        out
    }
}

/// The monthly cost in a plan, USD: before and after the plan, and the items with a fixed
/// price of the stack as it will be (as it is, for a destroy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostDoc {
    pub region: String,
    /// `None`: the repository's table has no prices for the region (never priced as zero).
    pub prices_as_of: Option<String>,
    pub before: Option<f64>,
    pub after: Option<f64>,
    pub items: Vec<CostItem>,
    pub usage: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostItem {
    pub address: String,
    pub what: String,
    pub monthly: f64,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplaceOrder {
    DeleteBeforeCreate,
    CreateBeforeDelete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeDoc {
    pub address: String,
    pub kind: String,
    pub name: String,
    pub action: Action,
    /// Only for `replace`.
    pub replace_order: Option<ReplaceOrder>,
    /// Why, when it is not a plain difference: an orphan, a duplicate, a replaced dependency.
    pub reason: Option<String>,
    /// The physical id of the existing resource (`null` for a create).
    pub id: Option<String>,
    /// The observed attributes, normalized (`null` for a create).
    pub before: Option<Map<String, Value>>,
    /// The desired attributes as known at plan time (`null` for a delete); values known only
    /// after apply are `null` here and listed in `unknown_paths`.
    pub after: Option<Map<String, Value>>,
    /// Paths into `after` whose value is known only after apply.
    pub unknown_paths: Vec<String>,
    /// Paths whose value is secret: never present in `before`, `after` or `attributes`.
    pub sensitive_paths: Vec<String>,
    /// For `update` and `replace`: the minimal set of changed sub-values.
    pub attributes: Vec<AttrChange>,
    /// Attributes this resource never diffs after its create (`ignore_changes`); left out
    /// when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_changes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttrAction {
    Add,
    Remove,
    Update,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttrChange {
    /// `desired_count`, `tags.Name`, `container.environment[PREFECT_API_URL]` (a list element
    /// named by its `name`), `routes[0].target` (a list element by its position in the
    /// normalized, sorted list). An element added
    /// to or removed from an unordered list has the list's path.
    pub path: String,
    pub action: AttrAction,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// Paths inside `after` known only after apply (`""`: all of it).
    pub after_unknown_paths: Vec<String>,
    pub forces_replacement: bool,
    /// A secret value changed: `before` and `after` are `null`.
    pub sensitive: bool,
}

impl PlanDoc {
    /// After reading a document back from JSON. JSON writes an absent value and a value
    /// known only after apply (`null`, its paths in `after_unknown_paths`) alike; each
    /// attribute's action tells them apart again (only an added one has no `before`, only a
    /// removed one no `after`, a secret has neither), so the document read equals the one
    /// written and renders the same (`(known after apply)`, not nothing).
    pub fn restore_unknowns(&mut self) {
        for a in self.changes.iter_mut().flat_map(|c| &mut c.attributes) {
            if a.sensitive {
                continue;
            }
            if a.before.is_none() && a.action != AttrAction::Add {
                a.before = Some(Value::Null);
            }
            if a.after.is_none() && a.action != AttrAction::Remove {
                a.after = Some(Value::Null);
            }
        }
    }

    pub fn new(plan: &Plan) -> PlanDoc {
        let s = plan.summary();
        PlanDoc {
            format_version: FORMAT_VERSION,
            stack: plan.stack.clone(),
            summary: Summary {
                add: s.add,
                change: s.change,
                destroy: s.destroy,
            },
            changes: plan.changes.iter().filter_map(change_doc).collect(),
            targets: plan.selection.targets.clone(),
            replace: plan.selection.replace.clone(),
            left_out: plan.left_out,
            cost: None,
            target: None,
            existing: Vec::new(),
        }
    }

    /// With what the spec reads but does not own.
    pub fn reading(mut self, spec: &crate::spec::Spec) -> PlanDoc {
        // What the NAT gateways carry, beside their price per GB: what an endpoint would take
        // off them. For the stack as it will be (nothing once destroyed).
        if let Some(cost) = self
            .cost
            .as_mut()
            .filter(|c| c.after.is_some_and(|a| a > 0.0))
        {
            let through = crate::spec::nat_traffic(spec, &cost.region);
            if !through.is_empty() {
                cost.usage
                    .push(format!("through the NAT: {}", through.join("; ")));
            }
        }
        self.existing = spec
            .network
            .existing
            .as_ref()
            .map(crate::network::listed)
            .unwrap_or_default();
        self.existing
            .extend(spec.cluster.arn.iter().map(|a| format!("cluster {a}")));
        self.existing
            .extend(spec.secret.arn.iter().map(|a| format!("secret {a}")));
        self
    }

    /// The lines that list [`PlanDoc::existing`].
    pub fn existing_lines(&self) -> Vec<String> {
        self.existing
            .iter()
            .map(|e| format!("  = {e}  (existing, read-only)"))
            .collect()
    }

    /// With what the plan acts on.
    pub fn targeted(mut self, target: Target) -> PlanDoc {
        self.target = Some(target);
        self
    }

    /// With the monthly cost before and after the plan, from the price table for `region`.
    /// `assume`: the spec's `[cost]` usage assumptions.
    pub fn priced(
        mut self,
        plan: &Plan,
        region: &str,
        assume: &crate::cost::CostAssumptions,
    ) -> PlanDoc {
        let round = |x: f64| (x * 100.0).round() / 100.0;
        self.cost = Some(match crate::cost::prices(region) {
            None => CostDoc {
                region: region.to_owned(),
                prices_as_of: None,
                before: None,
                after: None,
                items: Vec::new(),
                usage: Vec::new(),
            },
            Some(prices) => {
                let (before, after) = crate::cost::of_plan(plan, &prices, assume);
                let shown = if after.lines.is_empty() {
                    &before
                } else {
                    &after
                };
                CostDoc {
                    region: region.to_owned(),
                    prices_as_of: Some(prices.as_of.clone()),
                    before: Some(round(before.total())),
                    after: Some(round(after.total())),
                    items: shown
                        .lines
                        .iter()
                        .map(|l| CostItem {
                            address: l.address.to_string(),
                            what: l.what.clone(),
                            monthly: round(l.monthly),
                        })
                        .collect(),
                    usage: shown.usage.clone(),
                }
            }
        });
        self
    }

    /// The `--target`/`--replace` a saved plan was made with, to compute it again alike.
    pub fn selection(&self) -> plan::Selection {
        plan::Selection {
            targets: self.targets.clone(),
            replace: self.replace.clone(),
        }
    }

    /// The note a narrowed plan carries, as Terraform's: why the stack may still differ from
    /// the spec after applying it.
    pub fn targeting_note(&self) -> Option<String> {
        if self.targets.is_empty() {
            return None;
        }
        let left = match self.left_out {
            0 => "no other change is pending".to_owned(),
            1 => "1 other change is left out".to_owned(),
            n => format!("{n} other changes are left out"),
        };
        Some(format!(
            "Targeting is in effect: only {} with what it needs and what must change with it; {left}. Run a plan without --target to bring the whole stack in line with the spec.",
            self.targets.join(", ")
        ))
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

fn change_doc(c: &plan::Change) -> Option<ChangeDoc> {
    let action = match c.action {
        plan::Action::NoOp => return None,
        plan::Action::Create => Action::Create,
        plan::Action::Update => Action::Update,
        plan::Action::Replace => Action::Replace,
        plan::Action::Delete => Action::Delete,
    };
    let replace_order = (action == Action::Replace).then(|| {
        if c.address.kind.def().create_before_destroy {
            ReplaceOrder::CreateBeforeDelete
        } else {
            ReplaceOrder::DeleteBeforeCreate
        }
    });
    let before = c
        .observed
        .as_ref()
        .filter(|_| action != Action::Create)
        .map(|o| {
            o.attrs
                .iter()
                .map(|(k, v)| (k.clone(), normalize(c.address.kind, k, v)))
                .collect()
        });
    let mut unknown_paths = Vec::new();
    let after = (action != Action::Delete).then(|| {
        c.planned
            .iter()
            .map(|(k, v)| (k.clone(), split_unknown(v, k, &mut unknown_paths)))
            .collect()
    });
    let has_secret = c.desired.as_ref().is_some_and(|d| d.sensitive.is_some())
        || c.observed.as_ref().is_some_and(|o| o.sensitive.is_some());
    let sensitive_paths = if has_secret {
        vec!["value".to_string()]
    } else {
        Vec::new()
    };
    let mut attributes = Vec::new();
    for d in &c.diffs {
        let forces_replacement = d.forces_replacement && action == Action::Replace;
        if d.sensitive {
            attributes.push(AttrChange {
                path: d.attr.clone(),
                action: AttrAction::Update,
                before: None,
                after: None,
                after_unknown_paths: Vec::new(),
                forces_replacement,
                sensitive: true,
            });
            continue;
        }
        let kind = c.address.kind;
        let before = d.before.as_ref().map(|v| normalize(kind, &d.attr, v));
        let after = d.after.as_ref().map(|v| normalize(kind, &d.attr, v));
        let mut leaves = Vec::new();
        nested(
            &d.attr,
            &d.attr,
            before.as_ref(),
            after.as_ref(),
            kind.def().ordered,
            &mut leaves,
        );
        for (path, before, after) in leaves {
            let mut after_unknown_paths = Vec::new();
            let after = after.map(|v| split_unknown(&v, "", &mut after_unknown_paths));
            attributes.push(AttrChange {
                path,
                action: match (&before, &after) {
                    (None, _) => AttrAction::Add,
                    (_, None) => AttrAction::Remove,
                    _ => AttrAction::Update,
                },
                before,
                after,
                after_unknown_paths,
                forces_replacement,
                sensitive: false,
            });
        }
    }
    let reason = c.reason.clone().or_else(|| {
        // Every difference is a value not known yet: the resource changes only because
        // something it refers to is replaced.
        let only_unknowns = !c.diffs.is_empty()
            && c.diffs
                .iter()
                .all(|d| d.after.as_ref().is_some_and(contains_unknown));
        only_unknowns.then(|| "a resource it refers to is replaced".to_string())
    });
    Some(ChangeDoc {
        address: c.address.to_string(),
        kind: c.address.kind.as_str().into(),
        name: c.address.name.clone(),
        action,
        replace_order,
        reason,
        id: c.observed.as_ref().map(|o| o.id.clone()),
        before,
        after,
        unknown_paths,
        sensitive_paths,
        attributes,
        ignore_changes: c
            .desired
            .as_ref()
            .map(|d| d.ignore_changes.clone())
            .unwrap_or_default(),
    })
}

/// A value not known at plan time: an unknown marker or an unresolved reference.
fn opaque(v: &Value) -> bool {
    is_unknown(v) || as_reference(v).is_some()
}

/// `v` with every value not known at plan time replaced by `null`, its path pushed to `out`.
fn split_unknown(v: &Value, path: &str, out: &mut Vec<String>) -> Value {
    if opaque(v) {
        out.push(path.to_string());
        return Value::Null;
    }
    match v {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| split_unknown(x, &index_path(path, i), out))
                .collect(),
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), split_unknown(x, &key_path(path, k), out)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn is_identifier(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `parent.key`, or `parent["key"]` for a key that is not an identifier (`prefect-ecs:stack`).
pub fn key_path(parent: &str, key: &str) -> String {
    match (parent.is_empty(), is_identifier(key)) {
        (true, true) => key.to_string(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{}]", Value::String(key.into())),
    }
}

pub fn index_path(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// A list element by its `name` field: `container.environment[PREFECT_API_URL]`.
fn name_path(parent: &str, name: &str) -> String {
    if is_identifier(name) {
        format!("{parent}[{name}]")
    } else {
        format!("{parent}[{}]", Value::String(name.into()))
    }
}

type Leaf = (String, Option<Value>, Option<Value>);

/// The smallest sub-values of `before` and `after` (both normalized) that differ.
/// `ordered`: the keys whose arrays keep their order ([`crate::kinds::KindDef::ordered`]).
fn nested(
    path: &str,
    key: &str,
    before: Option<&Value>,
    after: Option<&Value>,
    ordered: &[&str],
    out: &mut Vec<Leaf>,
) {
    if before == after {
        return;
    }
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a)))
            if !opaque(after.unwrap_or(&Value::Null)) =>
        {
            let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            for k in keys {
                nested(&key_path(path, k), k, b.get(k), a.get(k), ordered, out);
            }
        }
        (Some(Value::Array(b)), Some(Value::Array(a))) if !ordered.contains(&key) => {
            array_diff(path, key, b, a, ordered, out)
        }
        _ => out.push((path.to_string(), before.cloned(), after.cloned())),
    }
}

fn element_name(v: &Value) -> Option<&str> {
    v.as_object()?.get("name")?.as_str()
}

/// A named element without its name; its one remaining field alone (`{name, value}` → value).
fn without_name(v: &Value) -> Value {
    let mut m = v.as_object().cloned().unwrap_or_default();
    m.remove("name");
    if m.len() == 1 {
        return m.into_iter().next().map(|(_, v)| v).unwrap_or_default();
    }
    Value::Object(m)
}

fn array_diff(
    path: &str,
    key: &str,
    b: &[Value],
    a: &[Value],
    ordered: &[&str],
    out: &mut Vec<Leaf>,
) {
    let named = |xs: &[Value]| xs.iter().all(|x| element_name(x).is_some());
    if !a.is_empty() && !b.is_empty() && named(a) && named(b) {
        let find = |xs: &[Value], n: &str| {
            xs.iter()
                .find(|x| element_name(x) == Some(n))
                .map(without_name)
        };
        let names: BTreeSet<&str> = b.iter().chain(a).filter_map(element_name).collect();
        for n in names {
            nested(
                &name_path(path, n),
                key,
                find(b, n).as_ref(),
                find(a, n).as_ref(),
                ordered,
                out,
            );
        }
        return;
    }
    let scalar = |x: &Value| !x.is_object() || opaque(x);
    if a.iter().any(|x| scalar(x) && opaque(x)) {
        // Which element an unknown replaces cannot be said: show the list as a whole.
        out.push((
            path.to_string(),
            Some(Value::Array(b.to_vec())),
            Some(Value::Array(a.to_vec())),
        ));
        return;
    }
    let removed: Vec<&Value> = b.iter().filter(|x| !a.contains(x)).collect();
    let added: Vec<(usize, &Value)> = a
        .iter()
        .enumerate()
        .filter(|(_, x)| !b.contains(x))
        .collect();
    let objects = removed
        .iter()
        .chain(added.iter().map(|(_, x)| x))
        .all(|x| x.is_object());
    if removed.len() == added.len() && objects {
        for (r, (i, x)) in removed.into_iter().zip(added) {
            nested(&index_path(path, i), key, Some(r), Some(x), ordered, out);
        }
        return;
    }
    for r in removed {
        out.push((path.to_string(), Some(r.clone()), None));
    }
    for (_, x) in added {
        out.push((path.to_string(), None, Some(x.clone())));
    }
}

/// A compact rendering of `v` at `path`, with the values at `unknown` paths shown as
/// `(known after apply)`.
pub fn show(v: &Value, path: &str, unknown: &BTreeSet<&str>) -> String {
    if unknown.contains(path) {
        return UNKNOWN.into();
    }
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .enumerate()
                .map(|(i, x)| show(x, &index_path(path, i), unknown))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(m) if m.is_empty() => "{}".to_owned(),
        Value::Object(m) => format!(
            "{{ {} }}",
            m.iter()
                .map(|(k, x)| format!("{} = {}", key(k), show(x, &key_path(path, k), unknown)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// A key as Terraform writes it: bare when it is an identifier, quoted otherwise.
fn key(k: &str) -> String {
    if is_identifier(k) {
        k.to_owned()
    } else {
        format!("{k:?}")
    }
}

/// Lines longer than this are broken into indented blocks.
const WIDTH: usize = 100;

/// The tags prefect-ecs keeps for itself (ownership, the spec digest): in the JSON plan only,
/// since they change with every edit of the spec and say nothing a reviewer decides on.
fn is_internal_tag(key: &str) -> bool {
    key.starts_with("prefect-ecs:")
}

/// Whether a reader of the human or Markdown plan sees this attribute change.
pub fn visible(a: &AttrChange) -> bool {
    !(a.path.starts_with("tags[\"prefect-ecs:") || a.path == "tags" && internal_only(a))
}

/// A change of a whole `tags` value that adds or removes only internal tags.
fn internal_only(a: &AttrChange) -> bool {
    [&a.before, &a.after].into_iter().flatten().all(|v| {
        v.as_object()
            .is_some_and(|m| m.keys().all(|k| is_internal_tag(k)))
    })
}

/// `v` as `show` gives it when it fits on a line of `WIDTH` beside `used` columns, otherwise
/// as Terraform prints nested values: one key or item per line, indented under the line that
/// opens it (`indent` columns).
pub fn pretty(
    v: &Value,
    path: &str,
    unknown: &BTreeSet<&str>,
    indent: usize,
    used: usize,
) -> String {
    let compact = show(v, path, unknown);
    if used + compact.chars().count() <= WIDTH || unknown.contains(path) {
        return compact;
    }
    let inner = " ".repeat(indent + 4);
    match v {
        Value::Object(m) if !m.is_empty() => {
            let width = m.keys().map(|k| key(k).chars().count()).max().unwrap_or(0);
            let mut s = "{\n".to_owned();
            for (k, x) in m {
                let value = pretty(
                    x,
                    &key_path(path, k),
                    unknown,
                    indent + 4,
                    indent + 7 + width,
                );
                s.push_str(&format!("{inner}{:<width$} = {value}\n", key(k)));
            }
            s + &" ".repeat(indent) + "}"
        }
        Value::Array(items) if !items.is_empty() => {
            let mut s = "[\n".to_owned();
            for (i, x) in items.iter().enumerate() {
                let value = pretty(x, &index_path(path, i), unknown, indent + 4, indent + 4);
                s.push_str(&format!("{inner}{value},\n"));
            }
            s + &" ".repeat(indent) + "]"
        }
        _ => compact,
    }
}

/// The `key = value` lines of a resource to be created, a long value broken into a block
/// indented from `indent` (the column the line starts at). A work pool's base job template is
/// a long document mostly as Prefect ships it: only its variables' defaults are shown (the
/// JSON plan has all of it). Internal tags are left out.
pub fn created_lines(c: &ChangeDoc, indent: usize) -> Vec<(String, String)> {
    let unknown: BTreeSet<&str> = c.unknown_paths.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    let line = |k: &str, v: &Value| pretty(v, k, &unknown, indent, indent + k.len() + 3);
    for (k, v) in c.after.iter().flatten() {
        let props = v
            .pointer("/variables/properties")
            .and_then(Value::as_object);
        match props {
            Some(props) if k == "base_job_template" => {
                out.push((
                    k.clone(),
                    "(the Prefect server's default for this pool type, with these defaults)".into(),
                ));
                let base = key_path(&key_path(k, "variables"), "properties");
                for (name, var) in props {
                    if let Some(d) = var.get("default") {
                        let path = key_path(&key_path(&base, name), "default");
                        let shown = show(d, &path, &unknown);
                        out.push((format!("{k}.variables.{name}.default"), shown));
                    }
                }
            }
            _ if k == "tags" && v.is_object() => {
                let mut tags = v.clone();
                if let Some(m) = tags.as_object_mut() {
                    m.retain(|t, _| !is_internal_tag(t));
                }
                if tags.as_object().is_some_and(|m| !m.is_empty()) {
                    out.push((k.clone(), line(k, &tags)));
                }
            }
            _ => out.push((k.clone(), line(k, v))),
        }
    }
    out.extend(
        c.sensitive_paths
            .iter()
            .map(|p| (p.clone(), "(sensitive)".to_owned())),
    );
    out
}

/// One attribute change as a line's text, without its marker: `path: before → after`; a
/// long value broken into a block indented from `indent`.
pub fn attr_line(a: &AttrChange, indent: usize) -> String {
    if a.sensitive {
        return format!("{}: (sensitive value changed)", a.path);
    }
    let unknown: BTreeSet<&str> = a.after_unknown_paths.iter().map(String::as_str).collect();
    let none = BTreeSet::new();
    let used = indent + a.path.chars().count() + 2;
    match (&a.before, &a.after) {
        (Some(b), Some(x)) => {
            let before = pretty(b, "", &none, indent, used);
            let after_used = if before.contains('\n') {
                indent + 3
            } else {
                used + before.chars().count() + 3
            };
            let after = pretty(x, "", &unknown, indent, after_used);
            format!("{}: {before} → {after}", a.path)
        }
        (Some(b), None) => format!("{}: {}", a.path, pretty(b, "", &none, indent, used)),
        (None, Some(x)) => format!("{}: {}", a.path, pretty(x, "", &unknown, indent, used)),
        (None, None) => a.path.clone(),
    }
}

/// The change's sign as people know it from Terraform.
pub fn symbol(c: &ChangeDoc) -> &'static str {
    match (c.action, c.replace_order) {
        (Action::Create, _) => "+",
        (Action::Update, _) => "~",
        (Action::Replace, Some(ReplaceOrder::CreateBeforeDelete)) => "+/-",
        (Action::Replace, _) => "-/+",
        (Action::Delete, _) => "-",
    }
}

pub fn attr_symbol(a: &AttrChange) -> &'static str {
    match a.action {
        AttrAction::Add => "+",
        AttrAction::Remove => "-",
        AttrAction::Update => "~",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The leaves of a change to `attr` of the kind the tests take it from.
    fn leaves(attr: &str, before: Value, after: Value) -> Vec<String> {
        use crate::model::Kind;
        let kind = match attr {
            "container" => Kind::TaskDefinition,
            "document" => Kind::IamRolePolicy,
            "routes" => Kind::RouteTable,
            _ => Kind::Vpc,
        };
        let mut out = Vec::new();
        let (b, a) = (
            normalize(kind, attr, &before),
            normalize(kind, attr, &after),
        );
        let ordered = kind.def().ordered;
        nested(attr, attr, Some(&b), Some(&a), ordered, &mut out);
        out.into_iter()
            .map(|(path, before, after)| {
                let mut unknown = Vec::new();
                let after = after.map(|v| split_unknown(&v, "", &mut unknown));
                attr_line(
                    &AttrChange {
                        action: AttrAction::Update,
                        path,
                        before,
                        after,
                        after_unknown_paths: unknown,
                        forces_replacement: false,
                        sensitive: false,
                    },
                    0,
                )
            })
            .collect()
    }

    #[test]
    fn environment_changes_show_only_the_changed_variables() {
        let env = |url: &str, extra: bool| {
            let mut e = vec![
                json!({"name": "PREFECT_API_URL", "value": url}),
                json!({"name": "PREFECT_ACCOUNT_ID", "value": "1"}),
            ];
            if extra {
                e.push(json!({"name": "EXTRA", "value": "x"}));
            }
            json!({"image": "i", "command": ["a", "b"], "environment": e})
        };
        assert_eq!(
            leaves("container", env("a", true), env("b", false)),
            [
                r#"container.environment[EXTRA]: "x""#,
                r#"container.environment[PREFECT_API_URL]: "a" → "b""#,
            ]
        );
    }

    #[test]
    fn policies_and_tags_show_the_changed_parts() {
        let doc = |actions: Value, resource: Value| {
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"},
                {"Effect": "Allow", "Action": actions, "Resource": resource}]})
        };
        assert_eq!(
            leaves(
                "document",
                doc(json!(["iam:PassRole"]), json!(["arn:a"])),
                doc(json!(["iam:PassRole", "ecs:RunTask"]), json!(["arn:a"]))
            ),
            [r#"document.Statement[0].Action: "ecs:RunTask""#]
        );
        assert_eq!(
            leaves(
                "document",
                doc(json!(["iam:PassRole"]), json!(["arn:a"])),
                doc(json!(["iam:PassRole"]), json!([crate::model::unknown()]))
            ),
            [r#"document.Statement[0].Resource: ["arn:a"] → [(known after apply)]"#]
        );
        assert_eq!(
            leaves(
                "tags",
                json!({"Name": "a", "prefect-ecs:stack": "s"}),
                json!({"prefect-ecs:stack": "t"})
            ),
            [
                r#"tags.Name: "a""#,
                r#"tags["prefect-ecs:stack"]: "s" → "t""#
            ]
        );
        assert_eq!(
            leaves(
                "routes",
                json!([{"destination": "0.0.0.0/0", "target": "nat-1"}]),
                json!([{"destination": "0.0.0.0/0", "target": crate::model::unknown()}])
            ),
            ["routes[0].target: \"nat-1\" → (known after apply)"]
        );
        assert_eq!(
            leaves(
                "container",
                json!({"command": ["a", "b"]}),
                json!({"command": ["b", "a"]})
            ),
            [r#"container.command: ["a", "b"] → ["b", "a"]"#]
        );
    }
}
