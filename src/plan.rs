//! The plan: what apply will do, as data, and its rendering for people. Pure.
//! Apply executes exactly the changes computed here; it does not decide anything again.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::Value;

use crate::diff::{AttrDiff, compare};
use crate::graph::StackGraph;
use crate::model::{
    Address, Attrs, Conflict, Desired, Observed, ObservedState, UNKNOWN, is_unknown, resolve,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    NoOp,
    Create,
    Update,
    Replace,
    Delete,
}

#[derive(Debug, Clone)]
pub struct Change {
    pub address: Address,
    pub action: Action,
    /// Why, for changes that are not a plain spec difference.
    pub reason: Option<String>,
    pub diffs: Vec<AttrDiff>,
    /// The desired attributes as far as known at plan time (unknowns marked).
    pub planned: Attrs,
    /// The desired resource with its references unresolved: apply resolves them against the
    /// outputs of the resources it has just created.
    pub desired: Option<Desired>,
    pub observed: Option<Observed>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub stack: String,
    /// Every desired resource in creation order (no-ops included: their outputs feed the
    /// others), then every deletion.
    pub changes: Vec<Change>,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    #[error(
        "{} resource(s) with this stack's names exist but are not owned by stack \"{stack}\":\n{}",
        conflicts.len(),
        conflicts.iter().map(|c| format!("  {}: {}", c.address, c.description)).collect::<Vec<_>>().join("\n")
    )]
    #[diagnostic(help(
        "prefect-ecs never modifies or deletes what it did not create: rename the resource in the spec, or remove the other resource yourself"
    ))]
    NotOwned {
        stack: String,
        conflicts: Vec<Conflict>,
    },
}

/// Desired against observed. `graph` is `None` for destroy: a plan against an empty stack.
pub fn compute(
    stack: &str,
    graph: Option<&StackGraph>,
    observed: &ObservedState,
) -> Result<Plan, PlanError> {
    if !observed.conflicts.is_empty() {
        return Err(PlanError::NotOwned {
            stack: stack.into(),
            conflicts: observed.conflicts.clone(),
        });
    }
    let mut by_address: BTreeMap<&Address, &Observed> = BTreeMap::new();
    let mut changes = Vec::new();
    for o in &observed.resources {
        if by_address.insert(&o.address, o).is_some() {
            changes.push(deletion(
                o,
                format!("another {} carries the same address", o.address),
            ));
        }
    }
    let mut desired_addrs = BTreeSet::new();
    if let Some(graph) = graph {
        let mut actions: BTreeMap<Address, Action> = BTreeMap::new();
        for address in graph.order().expect("a built graph has no cycle") {
            let d = graph
                .get(&address)
                .expect("ordered addresses are in the graph");
            let found = by_address.get(&address).copied();
            let lookup = |a: &Address, out: &str| -> Option<String> {
                match actions.get(a) {
                    Some(Action::NoOp | Action::Update) => {
                        by_address.get(a)?.outputs.get(out).cloned()
                    }
                    _ => None,
                }
            };
            let resolved = d
                .attrs
                .iter()
                .map(|(k, v)| (k.clone(), resolve(v, &lookup)))
                .collect();
            let (action, diffs) = match found {
                None => (Action::Create, Vec::new()),
                Some(o) => {
                    let diffs = compare(address.kind, &resolved, d.sensitive.as_ref(), o);
                    let action = if diffs.is_empty() {
                        Action::NoOp
                    } else if diffs.iter().any(|d| d.forces_replacement) {
                        Action::Replace
                    } else {
                        Action::Update
                    };
                    (action, diffs)
                }
            };
            actions.insert(address.clone(), action);
            desired_addrs.insert(address.clone());
            changes.push(Change {
                address,
                action,
                reason: None,
                diffs,
                planned: resolved,
                desired: Some(d.clone()),
                observed: found.cloned(),
            });
        }
    }
    let mut orphans: Vec<&Observed> = by_address
        .values()
        .filter(|o| !desired_addrs.contains(&o.address) && !o.deleting)
        .copied()
        .collect();
    orphans.sort_by(|a, b| a.address.cmp(&b.address));
    let reason = if graph.is_some() {
        "no longer in the spec"
    } else {
        "destroy"
    };
    changes.extend(orphans.into_iter().map(|o| deletion(o, reason.into())));
    Ok(Plan {
        stack: stack.into(),
        changes,
    })
}

fn deletion(o: &Observed, reason: String) -> Change {
    Change {
        address: o.address.clone(),
        action: Action::Delete,
        reason: Some(reason),
        diffs: Vec::new(),
        planned: Attrs::new(),
        desired: None,
        observed: Some(o.clone()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.action {
                Action::NoOp => {}
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Replace => {
                    s.add += 1;
                    s.destroy += 1;
                }
                Action::Delete => s.destroy += 1,
            }
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        self.summary() == Summary::default()
    }

    /// The plan as people read it: one block per change, then the summary line.
    pub fn render(&self) -> String {
        if self.is_empty() {
            return "No changes. The stack matches the spec.\n".into();
        }
        let mut s = format!(
            "prefect-ecs will perform these actions on stack \"{}\":\n\n",
            self.stack
        );
        for c in self.changes.iter().filter(|c| c.action != Action::NoOp) {
            render_change(&mut s, c);
        }
        let sum = self.summary();
        let _ = writeln!(
            s,
            "Plan: {} to add, {} to change, {} to destroy.",
            sum.add, sum.change, sum.destroy
        );
        s
    }
}

fn render_change(s: &mut String, c: &Change) {
    let cbd = c.address.kind.schema().create_before_destroy;
    let symbol = match c.action {
        Action::NoOp => return,
        Action::Create => "  +",
        Action::Update => "  ~",
        Action::Replace if cbd => "+/-",
        Action::Replace => "-/+",
        Action::Delete => "  -",
    };
    let _ = write!(s, "{symbol} {}", c.address);
    if let Some(r) = &c.reason {
        let _ = write!(s, "  # {r}");
    }
    if c.action == Action::Replace && cbd {
        let _ = write!(
            s,
            "  # new revision first, old one removed after its users moved"
        );
    }
    s.push('\n');
    match c.action {
        Action::Create => {
            let d = c.desired.as_ref().expect("a create has a desired resource");
            for (k, v) in &c.planned {
                let _ = writeln!(s, "      {k} = {}", show(v));
            }
            if d.sensitive.is_some() {
                let _ = writeln!(s, "      value = (sensitive)");
            }
        }
        Action::Update | Action::Replace => {
            for d in &c.diffs {
                if d.sensitive {
                    let _ = writeln!(s, "    ~ {}: (sensitive value changed)", d.attr);
                    continue;
                }
                let before = d
                    .before
                    .as_ref()
                    .map(show)
                    .unwrap_or_else(|| "(absent)".into());
                let after = d.after.as_ref().map(show).unwrap_or_default();
                let forces = if d.forces_replacement && c.action == Action::Replace {
                    "  # forces replacement"
                } else {
                    ""
                };
                let _ = writeln!(s, "    ~ {}: {before} → {after}{forces}", d.attr);
            }
        }
        Action::Delete => {
            if let Some(o) = &c.observed {
                let _ = writeln!(s, "      id = {}", o.id);
            }
        }
        Action::NoOp => {}
    }
    s.push('\n');
}

/// A compact rendering of a value, with unknowns and references shown as `(known after apply)`.
pub fn show(v: &Value) -> String {
    if is_unknown(v) || crate::model::as_reference(v).is_some() {
        return UNKNOWN.into();
    }
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k}: {}", show(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}
