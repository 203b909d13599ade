//! `apply`: a spec's plan computed and run under the stack's lock, or a saved plan run exactly
//! as reviewed; done when the workers are online.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::{IntoDiagnostic, Result, miette};

use super::plan::read_saved_plan;
use super::{Context, Settings, print};
use crate::cli::RunFlags;
use crate::plan::Selection;
use crate::planfile::{Basis, PlanFile};
use crate::render::PlanDoc;

pub async fn run(
    settings: &Settings,
    spec: &Path,
    run: &RunFlags,
    selection: &Selection,
) -> Result<ExitCode> {
    if let Some(saved) = read_saved_plan(spec)? {
        if !selection.is_empty() {
            return Err(miette!(
                help = "pass --target/--replace to `plan --out`, review, then apply the file alone",
                "--target and --replace choose what a plan holds: the saved plan {} already holds what it was made with",
                spec.display()
            ));
        }
        return apply_saved(spec, saved, run, settings).await;
    }
    let mut ctx = Context::new(spec, settings, true, !run.no_wait).await?;
    ctx.selection = selection.clone();
    ctx.locked("apply", async {
        let plan = ctx.plan().await?;
        let progress = print::progress(run, settings.style, "apply")?;
        ctx.run(plan, run, progress).await
    })
    .await
}

/// Apply a saved plan: recompute it from the spec it names and from AWS as it is now, and run
/// it only if nothing it was computed from has changed, so what runs is what was reviewed.
async fn apply_saved(
    file: &Path,
    saved: PlanFile,
    flags: &RunFlags,
    settings: &Settings,
) -> Result<ExitCode> {
    let spec = PathBuf::from(&saved.spec_path);
    if !spec.is_file() {
        return Err(miette!(
            "the saved plan {} was made from the spec {}, which is not there: run apply from the directory plan ran in",
            file.display(),
            spec.display()
        ));
    }
    // The environment it was made for: `--env` may repeat it, not change it.
    let planned = saved.plan.target.clone();
    let planned_env = planned.as_ref().and_then(|t| t.env.clone());
    if let Some(env) = &settings.env
        && planned_env.as_ref() != Some(env)
    {
        return Err(miette!(
            "the saved plan {} was made for {}, not --env {env}: nothing was changed",
            file.display(),
            planned_env.map_or("a file without environments".into(), |e| format!(
                "environment {e}"
            )),
        ));
    }
    let settings = &Settings {
        env: planned_env,
        ..settings.clone()
    };
    let mut ctx = Context::new(&spec, settings, true, !flags.no_wait).await?;
    // The same environment, account, region and Prefect workspace, or nothing.
    let differences = planned
        .map(|t| t.differences(&ctx.run_target()))
        .unwrap_or_default();
    if !differences.is_empty() {
        return Err(miette!(
            "the saved plan {} was made for another target, nothing was changed:\n  {}",
            file.display(),
            differences.join("\n  ")
        ));
    }
    // Computed again as it was made: with the same --target and --replace.
    ctx.selection = saved.plan.selection();
    ctx.locked(
        "apply",
        apply_saved_locked(file, &spec, saved, flags, settings, &ctx),
    )
    .await
}

async fn apply_saved_locked(
    file: &Path,
    spec: &Path,
    saved: PlanFile,
    flags: &RunFlags,
    settings: &Settings,
    ctx: &Context,
) -> Result<ExitCode> {
    let spec_bytes = std::fs::read(spec).into_diagnostic()?;
    let (observed, plan) = ctx.observe_and_plan().await?;
    let basis = Basis {
        spec_bytes: &spec_bytes,
        region: &ctx.region,
        graph: ctx.graph.get().expect("apply builds the desired graph"),
        observed: &observed,
    };
    let stale = saved.stale(&basis, &PlanDoc::new(&plan));
    if !stale.is_empty() {
        return Err(miette!(
            "the saved plan {} is out of date, nothing was changed:\n{}\nmake and review a new plan: `prefect-ecs plan --out {} {}`",
            file.display(),
            stale.join("\n"),
            file.display(),
            spec.display()
        ));
    }
    // Reviewed when it was saved: no second question.
    let flags = RunFlags {
        auto_approve: true,
        no_wait: flags.no_wait,
        worker_timeout: flags.worker_timeout,
        json: flags.json,
    };
    let progress = print::progress(&flags, settings.style, "apply")?;
    ctx.run(plan, &flags, progress).await
}
