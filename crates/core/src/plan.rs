//! The plan: what apply will do, as data. Pure. Rendering reads it through `render::PlanDoc`.
//! Apply executes exactly the changes computed here; it does not decide anything again.

use std::collections::{BTreeMap, BTreeSet};

use crate::diff::{AttrDiff, compare};
use crate::graph::StackGraph;
use crate::kinds::ecs_service::FORCE_NEW_DEPLOYMENT;
use crate::model::{
    Address, Attrs, Conflict, Desired, Kind, Observed, ObservedState, TAG_ADOPTED, TAG_SPEC,
    resolve,
};
use crate::render::PlanDoc;
use crate::render::human::{self, Style};

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
    /// The spec's own graph: each resource and what it must come after (references and the
    /// orderings AWS needs that no id shows, like a service after its routes). Deletions run
    /// against it, so destroy is the exact inverse of creation even where discovery sees no
    /// reference; discovered `uses` add the orphans the spec no longer names.
    pub after: BTreeMap<Address, Vec<Address>>,
    /// What `--target`/`--replace` asked for; empty for a whole plan.
    pub selection: Selection,
    /// Changes `--target` left out of this plan (no-ops not counted).
    pub left_out: usize,
}

/// What `--target` and `--replace` ask of a plan, addresses as the user wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only these resources, what they need, and what must change with them.
    pub targets: Vec<String>,
    /// Replaced although the spec and AWS agree (a worker to start from scratch).
    pub replace: Vec<String>,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty() && self.replace.is_empty()
    }
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
    #[error(
        "stack \"{stack}\" names existing resources that are not there, nothing was changed:\n{}",
        missing.iter().map(|m| format!("  {m}")).collect::<Vec<_>>().join("\n")
    )]
    #[diagnostic(help(
        "correct the ARN in the spec, or restore the resource; destroy does not need it"
    ))]
    Missing { stack: String, missing: Vec<String> },
    #[error("{flag} {address}: {problem}")]
    #[diagnostic(help("{help}"))]
    Selection {
        flag: &'static str,
        address: String,
        problem: String,
        help: String,
    },
}

impl Plan {
    /// The ECS services whose tasks this plan replaces: an existing service updated or
    /// replaced, or its task definition given a new revision (both are named for the worker).
    pub fn redeployed_services(&self) -> BTreeSet<String> {
        self.changes
            .iter()
            .filter(|c| matches!(c.action, Action::Update | Action::Replace))
            .filter(|c| matches!(c.address.kind, Kind::EcsService | Kind::TaskDefinition))
            .map(|c| c.address.name.clone())
            .collect()
    }
}

/// Adoption is a fact of the resource's past, not of the spec: a pool prefect-ecs did not
/// create stays marked adopted when `adopt = true` leaves the spec, so no destroy deletes it.
fn still_adopted(d: &Desired) -> Desired {
    let mut d = d.clone();
    if let Some(tags) = d
        .attrs
        .get_mut("tags")
        .and_then(serde_json::Value::as_object_mut)
    {
        tags.insert(TAG_ADOPTED.into(), "true".into());
    }
    d
}

/// Desired against observed. `graph` is `None` for destroy: a plan against an empty stack.
pub fn compute(
    stack: &str,
    graph: Option<&StackGraph>,
    observed: &ObservedState,
) -> Result<Plan, PlanError> {
    compute_selected(stack, graph, observed, &Selection::default())
}

/// [`compute`], with what `--replace` forces and narrowed to what `--target` names.
pub fn compute_selected(
    stack: &str,
    graph: Option<&StackGraph>,
    observed: &ObservedState,
    selection: &Selection,
) -> Result<Plan, PlanError> {
    if !observed.conflicts.is_empty() {
        return Err(PlanError::NotOwned {
            stack: stack.into(),
            conflicts: observed.conflicts.clone(),
        });
    }
    // A plan to the spec needs what it names read only; a destroy (no graph) does not.
    if graph.is_some() && !observed.missing.is_empty() {
        return Err(PlanError::Missing {
            stack: stack.into(),
            missing: observed.missing.clone(),
        });
    }
    let (targets, replace) = check_selection(graph, observed, selection)?;
    let mut by_address: BTreeMap<&Address, &Observed> = BTreeMap::new();
    let mut changes = Vec::new();
    // Two resources with one address (a create whose answer was lost, then retried; a copy
    // made by hand): the first found is the stack's, every other one is deleted exactly once.
    let mut duplicates = Vec::new();
    for o in &observed.resources {
        match by_address.entry(&o.address) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(o);
            }
            std::collections::btree_map::Entry::Occupied(_) => duplicates.push(o),
        }
    }
    for o in duplicates {
        changes.push(deletion(
            o,
            format!("another {} carries the same address", o.address),
        ));
    }
    let mut desired_addrs = BTreeSet::new();
    if let Some(graph) = graph {
        let mut actions: BTreeMap<Address, Action> = BTreeMap::new();
        // Secrets whose value changes: the services reading them need new tasks.
        let mut rotated: BTreeSet<Address> = BTreeSet::new();
        for address in graph.order().expect("a built graph has no cycle") {
            let d = graph
                .get(&address)
                .expect("ordered addresses are in the graph");
            let found = by_address.get(&address).copied();
            let kept;
            let d = match found {
                Some(o) if o.adopted() => {
                    kept = still_adopted(d);
                    &kept
                }
                _ => d,
            };
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
                    let mut diffs = compare(address.kind, &resolved, d.sensitive.as_ref(), o);
                    diffs.retain(|x| !d.ignore_changes.contains(&x.attr));
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
            if address.kind == Kind::Secret && diffs.iter().any(|x| x.sensitive) {
                rotated.insert(address.clone());
            }
            let (action, reason) = match found {
                Some(_) if replace.contains(&address) => (
                    Action::Replace,
                    Some("replaced as requested (--replace)".to_owned()),
                ),
                _ => (action, found.and_then(|o| drift(d, o, &diffs))),
            };
            let mut desired = d.clone();
            let mut planned = resolved;
            let secret = (action == Action::NoOp)
                .then(|| reads_rotated_secret(graph, d, &actions, &rotated))
                .flatten();
            let (action, reason) = if let Some(secret) = secret {
                // ECS reads `secrets` when a task starts: running tasks keep the old value.
                // The new tasks start once the secret has its new one.
                desired.extra_deps.push(secret);
                for attrs in [&mut desired.attrs, &mut planned] {
                    attrs.insert(FORCE_NEW_DEPLOYMENT.into(), serde_json::Value::Bool(true));
                }
                (
                    Action::Update,
                    Some("the secret it reads changed".to_owned()),
                )
            } else {
                (action, reason)
            };
            actions.insert(address.clone(), action);
            desired_addrs.insert(address.clone());
            changes.push(Change {
                address,
                action,
                reason,
                diffs,
                planned,
                desired: Some(desired),
                observed: found.cloned(),
            });
        }
    }
    let mut orphans: Vec<&Observed> = by_address
        .values()
        // An adopted work pool was there before the stack: it outlives it.
        .filter(|o| !desired_addrs.contains(&o.address) && !o.deleting && !o.adopted())
        .copied()
        .collect();
    orphans.sort_by(|a, b| a.address.cmp(&b.address));
    let reason = if graph.is_some() {
        "no longer in the spec"
    } else {
        "destroy"
    };
    changes.extend(orphans.into_iter().map(|o| deletion(o, reason.into())));
    let mut plan = Plan {
        stack: stack.into(),
        changes,
        after: graph.map(dependencies).unwrap_or_default(),
        selection: selection.clone(),
        left_out: 0,
    };
    if !targets.is_empty() {
        plan.narrow(&targets);
    }
    Ok(plan)
}

/// The addresses `--target` and `--replace` name, each checked: one the stack has (in the
/// spec or in AWS), and for `--replace` one that a replacement can act on.
fn check_selection(
    graph: Option<&StackGraph>,
    observed: &ObservedState,
    selection: &Selection,
) -> Result<(BTreeSet<Address>, BTreeSet<Address>), PlanError> {
    let desired: BTreeSet<Address> = graph
        .map(|g| g.resources().map(|d| d.address.clone()).collect())
        .unwrap_or_default();
    let known: BTreeSet<&Address> = desired
        .iter()
        .chain(observed.resources.iter().map(|o| &o.address))
        .collect();
    let check = |flag: &'static str, written: &str| -> Result<Address, PlanError> {
        let refuse = |problem: String, help: String| PlanError::Selection {
            flag,
            address: written.to_owned(),
            problem,
            help,
        };
        match Address::parse(written).filter(|a| known.contains(a)) {
            Some(a) => Ok(a),
            None => {
                let closest = known
                    .iter()
                    .map(|a| a.to_string())
                    .map(|a| (strsim::jaro_winkler(written, &a), a))
                    .filter(|(score, _)| *score > 0.8)
                    .max_by(|x, y| x.0.total_cmp(&y.0));
                Err(refuse(
                    "no resource of this stack has that address".to_owned(),
                    match closest {
                        Some((_, a)) => format!(
                            "did you mean {a}? `prefect-ecs plan SPEC` and `prefect-ecs graph SPEC` show every address"
                        ),
                        None => "addresses are kind.name as the plan prints them (`ecs_service.dev-worker`, `subnet.private[0]`): `prefect-ecs graph SPEC` lists them".to_owned(),
                    },
                ))
            }
        }
    };
    let targets = selection
        .targets
        .iter()
        .map(|t| check("--target", t))
        .collect::<Result<_, _>>()?;
    let mut replace = BTreeSet::new();
    for written in &selection.replace {
        let a = check("--replace", written)?;
        let refuse = |problem: &str, help: &str| PlanError::Selection {
            flag: "--replace",
            address: written.clone(),
            problem: problem.to_owned(),
            help: help.to_owned(),
        };
        if !desired.contains(&a) {
            return Err(refuse(
                "not in the spec: this plan deletes it, there is nothing to replace it with",
                "drop --replace, or put the resource back in the spec",
            ));
        }
        if observed
            .resources
            .iter()
            .any(|o| o.address == a && o.adopted())
        {
            return Err(refuse(
                "the work pool was adopted (it existed before the stack): prefect-ecs never deletes it",
                "delete and recreate it in Prefect yourself if you must; apply then takes it over again",
            ));
        }
        replace.insert(a);
    }
    Ok((targets, replace))
}

impl Plan {
    /// Keep only `targets`, what they need (transitively), and what must change with them:
    /// the users of a resource this plan replaces or deletes, which AWS would not let go
    /// otherwise, with what those need in turn. The rest is left out and counted.
    fn narrow(&mut self, targets: &BTreeSet<Address>) {
        let mut kept = targets.clone();
        loop {
            let mut todo: Vec<Address> = kept.iter().cloned().collect();
            while let Some(a) = todo.pop() {
                let needs = self
                    .changes
                    .iter()
                    .filter(|c| c.address == a)
                    .filter_map(|c| c.desired.as_ref())
                    .flat_map(Desired::deps);
                for d in needs.chain(self.after.get(&a).into_iter().flatten().cloned()) {
                    if kept.insert(d.clone()) {
                        todo.push(d);
                    }
                }
            }
            let going: Vec<&Change> = self
                .changes
                .iter()
                .filter(|c| kept.contains(&c.address))
                .filter(|c| matches!(c.action, Action::Replace | Action::Delete))
                .collect();
            let users: Vec<Address> = self
                .changes
                .iter()
                .filter(|u| u.action != Action::NoOp && !kept.contains(&u.address))
                .filter(|u| going.iter().any(|c| uses(u, c)))
                .map(|u| u.address.clone())
                .collect();
            if users.is_empty() {
                break;
            }
            kept.extend(users);
        }
        let counted = |c: &Change| c.action != Action::NoOp;
        self.left_out = self
            .changes
            .iter()
            .filter(|c| counted(c) && !kept.contains(&c.address))
            .count();
        self.changes.retain(|c| kept.contains(&c.address));
    }
}

/// Whether `user` refers to `used`: in the spec's graph, or by id in AWS.
fn uses(user: &Change, used: &Change) -> bool {
    let in_spec = user
        .desired
        .as_ref()
        .is_some_and(|d| d.deps().contains(&used.address));
    let in_aws = match (&user.observed, &used.observed) {
        (Some(u), Some(o)) => u.refers_to(o),
        _ => false,
    };
    in_spec || in_aws
}

/// For an ECS service whose task definition, unchanged itself, reads a secret in `rotated`:
/// that secret.
fn reads_rotated_secret(
    graph: &StackGraph,
    service: &Desired,
    actions: &BTreeMap<Address, Action>,
    rotated: &BTreeSet<Address>,
) -> Option<Address> {
    if service.address.kind != Kind::EcsService {
        return None;
    }
    service
        .deps()
        .iter()
        .filter(|a| a.kind == Kind::TaskDefinition)
        .filter(|a| actions.get(*a) == Some(&Action::NoOp))
        .filter_map(|a| graph.get(a))
        .find_map(|td| td.deps().into_iter().find(|s| rotated.contains(s)))
}

/// Destroy: every resource of the stack deleted, in the inverse of the order `graph` (the
/// spec's) creates them in.
pub fn destroy(
    stack: &str,
    graph: &StackGraph,
    observed: &ObservedState,
) -> Result<Plan, PlanError> {
    let mut plan = compute(stack, None, observed)?;
    plan.after = dependencies(graph);
    for c in &mut plan.changes {
        if c.address.kind == Kind::LogGroup {
            // What is easy to forget: the flow runs' logs are in it too.
            c.reason = Some("destroy, with every log stream in it (the flow runs' too)".into());
        }
    }
    Ok(plan)
}

impl Plan {
    /// Destroy also deregisters the task definitions the worker registered for the flow runs
    /// of the stack's pools (`found`: pool, revision ARN), which exist because of the stack
    /// though prefect-ecs did not make them. Nothing waits for them, nor they for anything:
    /// a deregistered definition leaves running tasks alone.
    pub fn remove_flow_run_definitions(&mut self, found: &[(String, String)]) {
        for (pool, arn) in found {
            let revision = arn.rsplit('/').next().unwrap_or(arn);
            let address = Address::new(Kind::TaskDefinition, revision);
            if self.changes.iter().any(|c| c.address == address) {
                continue;
            }
            let o = Observed {
                address,
                id: arn.clone(),
                outputs: Default::default(),
                attrs: Attrs::new(),
                uses: Vec::new(),
                sensitive: None,
                deleting: false,
            };
            self.changes.push(deletion(
                &o,
                format!("registered by the worker for flow runs of pool {pool}"),
            ));
        }
    }
}

fn dependencies(graph: &StackGraph) -> BTreeMap<Address, Vec<Address>> {
    graph
        .resources()
        .map(|d| (d.address.clone(), d.deps()))
        .collect()
}

/// "changed outside prefect-ecs" when the resource was applied from this very spec (its
/// [`TAG_SPEC`] digest matches) and still differs in a value the spec fully determines.
fn drift(d: &Desired, o: &Observed, diffs: &[AttrDiff]) -> Option<String> {
    let digest = |attrs: &Attrs| attrs.get("tags")?.get(TAG_SPEC)?.as_str().map(String::from);
    let same_spec = digest(&d.attrs)? == digest(&o.attrs)?;
    let drifted = diffs
        .iter()
        .any(|x| !x.sensitive && !x.after.as_ref().is_some_and(crate::model::contains_unknown));
    (same_spec && drifted).then(|| "changed outside prefect-ecs".to_string())
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

    /// The plan as people read it, without colour.
    pub fn render(&self) -> String {
        human::render(&PlanDoc::new(self), Style::default())
    }
}
