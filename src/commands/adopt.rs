//! `adopt`: a stack built outside prefect-ecs taken over (issue 13). The resources that are
//! unambiguously the spec's own — by name, or for EC2 by the VPC's Name tag and CIDR and what
//! is inside it — are taken for the stack's, the plan shows what converging them changes (the
//! ownership tags first of all), and on approval apply runs it. Nothing that matches the spec
//! is replaced; what matches two ways is refused, naming the candidates.

use std::path::Path;
use std::process::ExitCode;

use miette::Result;

use super::{Context, Settings, print};
use crate::cli::RunFlags;
use crate::plan::Plan;

pub async fn run(settings: &Settings, spec: &Path, run: &RunFlags) -> Result<ExitCode> {
    let ctx = Context::new(spec, settings, true, !run.no_wait).await?;
    ctx.locked("adopt", async {
        let matched = ctx.aws.prepare_adoption(&ctx.spec).await?;
        let plan = ctx.plan().await?;
        print_adopted(&matched, &plan);
        let progress = print::progress(run, settings.style, "apply")?;
        ctx.run(plan, run, progress).await
    })
    .await
}

/// What the adoption takes over: the EC2 resources matched, and every resource the plan finds
/// without ownership tags (found by name). On stderr: stdout stays the plan.
pub fn print_adopted(matched: &[String], plan: &Plan) {
    let mut lines: Vec<String> = matched.to_vec();
    for c in &plan.changes {
        let Some(o) = &c.observed else { continue };
        let untagged = o
            .attrs
            .get(crate::kinds::TAGS)
            .is_none_or(|t| t.get(crate::model::TAG_STACK).is_none());
        let listed = lines
            .iter()
            .any(|l| l.starts_with(&format!("{}  ", c.address)));
        if untagged && !listed {
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
