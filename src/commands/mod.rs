//! The commands: flags resolved once ([`Settings`]), then one operation per command, each a
//! thin glue from the spec through the core to the provider. Output goes through [`print`];
//! a run on a stack through [`Context`].

mod apply;
mod context;
mod destroy;
mod force_unlock;
mod graph;
mod interrupt;
mod logs;
mod output;
mod plan;
mod print;
mod settings;
mod show;
mod status;
#[cfg(test)]
mod tests;
mod validate;
mod verify;

use std::process::ExitCode;

use clap::CommandFactory;
use miette::Result;

use crate::cli::{Cli, Command};
pub use context::Context;
pub use settings::Settings;
use settings::runtime;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let base = Settings::resolve(cli.global.no_color);
    match &cli.command {
        Command::Validate { spec, region } => {
            validate::run(&base.with_region(region.as_ref()), spec)
        }
        Command::Graph {
            spec,
            format,
            region,
        } => graph::run(&base.with_region(region.as_ref()), spec, *format),
        Command::Plan {
            spec,
            aws,
            show,
            out,
            force,
            select,
        } => runtime()?.block_on(plan::run(
            &base.with_aws(aws),
            spec,
            show,
            out.as_deref(),
            *force,
            &select.selection(),
        )),
        Command::Apply {
            spec,
            aws,
            run,
            select,
            tuning,
        } => runtime()?.block_on(apply::run(
            &base.with_aws(aws).with_tuning(tuning),
            spec,
            &run.run(),
            &select.selection(),
        )),
        Command::Destroy {
            spec,
            aws,
            run,
            tuning,
        } => runtime()?.block_on(destroy::run(
            &base.with_aws(aws).with_tuning(tuning),
            spec,
            &run.run(),
        )),
        Command::ForceUnlock { stack, aws, force } => {
            runtime()?.block_on(force_unlock::run(&base.with_aws(aws), stack, *force))
        }
        Command::Show { plan, show } => show::run(&base, plan, show),
        Command::Output {
            args,
            aws,
            json,
            raw,
        } => {
            // The spec comes last, as in every other command; a name before it picks one output.
            let (name, spec) = match args.as_slice() {
                [name, spec] => (Some(name.as_str()), std::path::Path::new(spec)),
                [spec] => (None, std::path::Path::new(spec)),
                _ => unreachable!("clap takes one or two"),
            };
            if *raw && name.is_none() {
                return Err(miette::miette!(
                    help = "for example `prefect-ecs output --raw vpc_id SPEC`",
                    "--raw prints one value: name the output before the spec"
                ));
            }
            let how = output::How {
                name,
                json: *json,
                raw: *raw,
            };
            runtime()?.block_on(output::run(&base.with_aws(aws), spec, how))
        }
        Command::Verify { spec, aws } => {
            runtime()?.block_on(verify::run(&base.with_aws(aws), spec))
        }
        Command::Status {
            spec,
            aws,
            detailed_exitcode,
        } => runtime()?.block_on(status::run(&base.with_aws(aws), spec, *detailed_exitcode)),
        Command::Logs {
            spec,
            aws,
            worker,
            follow,
            since,
        } => runtime()?.block_on(logs::run(
            &base.with_aws(aws),
            spec,
            worker.as_deref(),
            *follow,
            *since,
        )),
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "prefect-ecs",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
