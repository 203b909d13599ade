//! `destroy`: everything the stack owns deleted under its lock, in the inverse of the order
//! the spec creates it in.

use std::path::Path;
use std::process::ExitCode;

use miette::Result;

use super::{Context, Settings, print};
use crate::cli::RunFlags;

pub async fn run(settings: &Settings, spec: &Path, run: &RunFlags) -> Result<ExitCode> {
    let ctx = Context::new(spec, settings, false, !run.no_wait).await?;
    ctx.locked("destroy", async {
        let plan = ctx.plan().await?;
        let progress = print::progress(run, settings.style, "destroy")?;
        ctx.run(plan, run, progress).await
    })
    .await
}
