//! `destroy`: everything the stack owns deleted under its lock, in the inverse of the order
//! the spec creates it in.

use std::path::Path;
use std::process::ExitCode;

use miette::{Result, miette};

use super::{Context, Settings, print};
use crate::cli::RunFlags;
use crate::spec::Spec;

/// `confirm`: `--confirm NAME`, which a protected stack needs.
pub async fn run(
    settings: &Settings,
    spec: &Path,
    run: &RunFlags,
    confirm: Option<&str>,
) -> Result<ExitCode> {
    // Before any AWS call: the spec alone says whether it may be destroyed.
    protected(&settings.load(spec)?, confirm)?;
    let ctx = Context::new(spec, settings, false, !run.no_wait).await?;
    ctx.locked("destroy", async {
        let plan = ctx.plan().await?;
        let progress = print::progress(run, settings.style, "destroy")?;
        ctx.run(plan, run, progress).await
    })
    .await
}

/// A protected stack is destroyed only with its name typed out: the environment's, or the
/// stack's in a file without environments. `--auto-approve` does not stand in for it.
fn protected(spec: &Spec, confirm: Option<&str>) -> Result<()> {
    if !spec.protected {
        return Ok(());
    }
    let (what, name) = match &spec.env {
        Some(env) => ("environment", env.as_str()),
        None => ("stack", spec.name.as_str()),
    };
    match confirm {
        Some(c) if c == name => Ok(()),
        Some(c) => Err(miette!(
            "--confirm {c} does not name this {what} ({name}): nothing was read or deleted"
        )),
        None => Err(miette!(
            help = format!("run `prefect-ecs destroy … --confirm {name}` to destroy it"),
            "stack \"{}\" is protected ([stack] protected = true): destroy needs --confirm {name}, the {what}'s name; nothing was read or deleted",
            spec.name
        )),
    }
}
