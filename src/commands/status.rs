//! `status`: each worker as ECS, its log and Prefect see it.

use std::path::Path;
use std::process::ExitCode;

use miette::Result;

use super::{Context, Settings};

pub async fn run(settings: &Settings, spec: &Path, detailed_exitcode: bool) -> Result<ExitCode> {
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
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    for f in &facts {
        match crate::diagnose::problems(f) {
            Ok(p) => problems.extend(p),
            Err(e) => unknown.push(e),
        }
    }
    println!();
    for line in unknown.iter().chain(&problems) {
        println!("! {line}");
    }
    let code = if !unknown.is_empty() {
        println!("Health unknown: Prefect could not be asked.");
        1
    } else if problems.is_empty() {
        println!(
            "Healthy: {} worker(s) running, online, their pools READY.",
            facts.len()
        );
        0
    } else {
        println!("Not healthy: {} problem(s).", problems.len());
        2
    };
    Ok(match detailed_exitcode {
        true => ExitCode::from(code),
        false => ExitCode::SUCCESS,
    })
}
