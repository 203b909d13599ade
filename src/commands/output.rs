//! `output`: what the stack made that others need (ARNs, ids), from AWS as it is.

use std::path::Path;
use std::process::ExitCode;

use miette::{Result, miette};

use super::{Context, Settings, print};

pub async fn run(settings: &Settings, spec: &Path, json: bool) -> Result<ExitCode> {
    let ctx = Context::new(spec, settings, false, true).await?;
    let observed = ctx.aws.discover(&ctx.spec).await?;
    let outputs = crate::outputs::collect(&observed);
    if outputs.is_empty() {
        return Err(miette!(
            "stack \"{}\" has no resources in {}: run `prefect-ecs apply {}` first",
            ctx.spec.name,
            ctx.region,
            spec.display()
        ));
    }
    if json {
        print::json(&serde_json::json!(outputs));
    } else {
        print!("{}", crate::outputs::render(&outputs));
    }
    Ok(ExitCode::SUCCESS)
}
