//! `output`: what the stack made that others need (ARNs, ids), from AWS as it is.

use std::path::Path;
use std::process::ExitCode;

use miette::{Result, miette};

use super::{Context, Settings, print};

/// What `output` prints: every output or one (`name`), as text, JSON or the bare value.
pub struct How<'a> {
    pub name: Option<&'a str>,
    pub json: bool,
    pub raw: bool,
}

pub async fn run(settings: &Settings, spec: &Path, how: How<'_>) -> Result<ExitCode> {
    let ctx = Context::new(spec, settings, false, true).await?;
    let observed = ctx.aws.discover(&ctx.spec).await?;
    let mut outputs = crate::outputs::collect(&observed);
    // What the spec names read only is the spec's to say (not found by the stack's tags).
    if !outputs.is_empty() {
        let spec = &ctx.spec;
        if let Some(e) = &spec.network.existing {
            let subnets = format!("{}_subnet_ids", spec.network.task_subnets.as_str());
            outputs.insert("vpc_id".into(), serde_json::json!(e.vpc_id));
            outputs.insert(subnets, serde_json::json!(e.subnet_ids));
        }
        if let Some(arn) = &spec.secret.arn {
            outputs.insert("secret_arn".into(), serde_json::json!(arn));
        }
        if let Some(arn) = &spec.cluster.arn {
            outputs.insert("cluster_arn".into(), serde_json::json!(arn));
        }
    }
    if outputs.is_empty() {
        return Err(miette!(
            "stack \"{}\" has no resources in {}: run `prefect-ecs apply {}` first",
            ctx.spec.name,
            ctx.region,
            spec.display()
        ));
    }
    if let Some(name) = how.name {
        let Some(value) = crate::outputs::lookup(&outputs, name) else {
            return Err(miette!(
                "stack \"{}\" has no output {name:?}; it has: {}",
                ctx.spec.name,
                outputs.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        };
        match (how.raw, how.json) {
            (true, _) => match crate::outputs::raw(value) {
                Some(text) => println!("{text}"),
                None => {
                    return Err(miette!(
                        "output {name:?} is a list or a map: --raw prints a string, number or \
                         boolean only; use --json"
                    ));
                }
            },
            (false, true) => print::json(value),
            (false, false) => match value {
                serde_json::Value::String(s) => println!("{s}"),
                other => println!("{other:#}"),
            },
        }
        return Ok(ExitCode::SUCCESS);
    }
    if how.json {
        print::json(&serde_json::json!(outputs));
    } else {
        print!("{}", crate::outputs::render(&outputs));
    }
    Ok(ExitCode::SUCCESS)
}
