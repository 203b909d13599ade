//! `plan`: what apply would change, and why; `--out` saves it for `apply` to run exactly.

use std::path::Path;
use std::process::ExitCode;

use miette::{IntoDiagnostic, Result, miette};

use super::{Context, Settings, print};
use crate::cli::{PlanFormat, ShowFlags};
use crate::model::ObservedState;
use crate::plan::Selection;
use crate::planfile::{Basis, PlanFile};
use crate::render::PlanDoc;

/// `--out` and `--force`.
pub struct Saving<'a> {
    pub out: Option<&'a Path>,
    pub force: bool,
}

pub async fn run(
    settings: &Settings,
    spec: &Path,
    show: &ShowFlags,
    saving: Saving<'_>,
    selection: &Selection,
    adopt: bool,
) -> Result<ExitCode> {
    let out = saving.out;
    if let Some(out) = out {
        may_write(spec, out, saving.force)?;
    }
    let mut ctx = Context::new(spec, settings, true, true).await?;
    ctx.selection = selection.clone();
    let matched = match adopt {
        true => Some(ctx.aws.prepare_adoption(&ctx.spec).await?),
        false => None,
    };
    let (observed, plan) = ctx.observe_and_plan().await?;
    if let Some(matched) = &matched {
        super::adopt::print_adopted(matched, &plan);
        for lost in super::adopt::replaced(&plan) {
            eprintln!("adopt: {lost} (adopt refuses this without --allow-replace)");
        }
    }
    let doc = PlanDoc::new(&plan)
        .priced(&plan, &ctx.region, &ctx.spec.cost)
        .targeted(ctx.run_target())
        .reading(&ctx.spec);
    if let Some(out) = out {
        save_plan(spec, out, &ctx, &observed, &doc, show.format())?;
    }
    print::plan(&doc, show, settings.style)
}

/// `Some` when `path` holds a plan saved by `plan --out` rather than a spec.
/// `--out` never overwrites the spec, nor any other file that is not a saved plan unless
/// `--force`: checked before anything is read from AWS.
fn may_write(spec: &Path, out: &Path, force: bool) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
    if same(spec, out) {
        return Err(miette!(
            "--out {} is the spec itself: name a new file for the plan, e.g. --out {}",
            out.display(),
            spec.with_extension("plan").display()
        ));
    }
    if !force && !matches!(read_saved_plan(out), Ok(Some(_))) {
        return Err(miette!(
            "{} exists and is not a saved plan: name a new file, or pass --force to overwrite it",
            out.display()
        ));
    }
    Ok(())
}

pub(super) fn read_saved_plan(path: &Path) -> Result<Option<PlanFile>> {
    let bytes = std::fs::read(path).map_err(|e| miette!("cannot read {}: {e}", path.display()))?;
    PlanFile::parse(&bytes).map_err(|e| miette!("{}: {e}", path.display()))
}

fn save_plan(
    spec: &Path,
    out: &Path,
    ctx: &Context,
    observed: &ObservedState,
    doc: &PlanDoc,
    format: PlanFormat,
) -> Result<()> {
    let spec_bytes = std::fs::read(spec).into_diagnostic()?;
    let basis = Basis {
        spec_bytes: &spec_bytes,
        region: &ctx.region,
        graph: ctx.graph.get().expect("plan builds the desired graph"),
        observed,
    };
    let file = PlanFile::new(&spec.to_string_lossy(), &basis, doc.clone());
    std::fs::write(out, file.to_bytes())
        .map_err(|e| miette!("cannot write the plan to {}: {e}", out.display()))?;
    let note = format!(
        "Saved the plan to {}: `prefect-ecs apply {}` applies exactly this plan, and refuses if the spec or the stack changed in the meantime.",
        out.display(),
        out.display()
    );
    print::note(format, &note);
    Ok(())
}
