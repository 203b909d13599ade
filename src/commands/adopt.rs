//! `adopt`: a stack built outside prefect-ecs taken over (issue 13). The resources that are
//! unambiguously the spec's own — by name, or for EC2 by the VPC's Name tag and CIDR and what
//! is inside it — are taken for the stack's, the plan shows what converging them changes (the
//! ownership tags first of all), and on approval apply runs it. Nothing that matches the spec
//! is replaced; what matches two ways is refused, naming the candidates.

use std::path::Path;
use std::process::ExitCode;

use miette::{Result, miette};

use super::{Context, Settings, print};
use crate::cli::RunFlags;
use crate::plan::{Action, Plan};

/// `allow_replace`: `--allow-replace`, without which a hand-built resource the plan would
/// replace or delete stops the adoption before anything changes.
pub async fn run(
    settings: &Settings,
    spec: &Path,
    run: &RunFlags,
    allow_replace: bool,
) -> Result<ExitCode> {
    let ctx = Context::new(spec, settings, true, !run.no_wait).await?;
    ctx.locked("adopt", async {
        let matched = ctx.aws.prepare_adoption(&ctx.spec).await?;
        let plan = ctx.plan().await?;
        print_adopted(&matched, &plan);
        let lost = replaced(&plan);
        if !lost.is_empty() && !allow_replace {
            return Err(miette!(
                help = "make the resource match the spec by hand, or pass --allow-replace to let adopt replace it",
                "adopting would replace or delete what was built by hand, nothing was changed:\n  {}",
                lost.join("\n  ")
            ));
        }
        let progress = print::progress(run, settings.style, "apply")?;
        ctx.run(plan, run, progress).await
    })
    .await
}

/// Adopted resources the plan replaces (a new task definition revision aside, which replaces
/// nothing that runs) or deletes, each with the attributes that force it.
pub fn replaced(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .filter(|c| matches!(c.action, Action::Replace | Action::Delete))
        .filter(|c| !c.address.kind.def().create_before_destroy)
        .filter(|c| c.observed.as_ref().is_some_and(untagged))
        .map(|c| {
            let why: Vec<&str> = c
                .diffs
                .iter()
                .filter(|d| d.forces_replacement)
                .map(|d| d.attr.as_str())
                .collect();
            match (c.action, why.is_empty()) {
                (Action::Delete, _) => format!("{} would be deleted", c.address),
                (_, true) => format!(
                    "{} would be replaced ({})",
                    c.address,
                    c.reason
                        .as_deref()
                        .unwrap_or("a resource it refers to is replaced")
                ),
                (_, false) => format!("{} would be replaced: {} differ", c.address, why.join(", ")),
            }
        })
        .collect()
}

/// Found without the stack's tag: adopted. A kind without tags of its own (an inline policy,
/// read with its role) is never adopted by itself.
fn untagged(o: &crate::model::Observed) -> bool {
    o.attrs
        .get(crate::kinds::TAGS)
        .is_some_and(|t| t.get(crate::model::TAG_STACK).is_none())
}

/// What the adoption takes over: the EC2 resources matched, and every resource the plan finds
/// without ownership tags (found by name). On stderr: stdout stays the plan.
pub fn print_adopted(matched: &[String], plan: &Plan) {
    let mut lines: Vec<String> = matched.to_vec();
    for c in &plan.changes {
        let Some(o) = &c.observed else { continue };
        let listed = lines
            .iter()
            .any(|l| l.starts_with(&format!("{}  ", c.address)));
        if untagged(o) && !listed {
            lines.push(format!("{}  {} (by name)", c.address, o.id));
        }
    }
    if lines.is_empty() {
        eprintln!(
            "adopt: nothing built outside prefect-ecs matches the spec; the plan makes the rest."
        );
        return;
    }
    eprintln!(
        "adopt: {} resource(s) built outside prefect-ecs are the spec's own and become the stack's (the plan writes their ownership tags; nothing else of them changes unless it says so):",
        lines.len()
    );
    for line in lines {
        eprintln!("  {line}");
    }
    eprintln!();
}
