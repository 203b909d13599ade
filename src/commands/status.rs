//! `status`: each worker as ECS, its log and Prefect see it.

use std::path::Path;
use std::process::ExitCode;

use miette::Result;

use super::{Context, Settings};

pub async fn run(settings: &Settings, spec: &Path) -> Result<ExitCode> {
    let ctx = Context::new(spec, settings, false, true).await?;
    let facts = futures::future::join_all(
        ctx.spec
            .workers
            .iter()
            .map(|w| async { ctx.aws.worker_facts(&ctx.worker_ref(w), 0).await }),
    )
    .await;
    println!("stack \"{}\" in {}", ctx.spec.name, ctx.region);
    for f in &facts {
        print!("\n{}", crate::diagnose::render_status(f));
    }
    Ok(ExitCode::SUCCESS)
}
