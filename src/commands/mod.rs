//! The commands: flags resolved once ([`Settings`]), then one operation per command, each a
//! thin glue from the spec through the core to the provider. Output goes through [`print`];
//! a run on a stack through [`Context`].

mod adopt;
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
mod render;
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
        Command::Validate {
            spec,
            inputs,
            region,
        } => validate::run(
            &base.with_region(region.as_ref()).with_inputs(inputs)?,
            spec,
        ),
        Command::Render {
            spec,
            inputs,
            region,
        } => render::run(
            &base.with_region(region.as_ref()).with_inputs(inputs)?,
            spec,
        ),
        Command::Graph {
            spec,
            inputs,
            format,
            region,
        } => graph::run(
            &base.with_region(region.as_ref()).with_inputs(inputs)?,
            spec,
            *format,
        ),
        Command::Plan {
            spec,
            inputs,
            aws,
            show,
            out,
            force,
            select,
            adopt,
        } => runtime()?.block_on(plan::run(
            &base.with_aws(aws).with_inputs(inputs)?,
            spec,
            show,
            plan::Saving {
                out: out.as_deref(),
                force: *force,
            },
            &select.selection(),
            *adopt,
        )),
        Command::Apply {
            spec,
            inputs,
            aws,
            run,
            select,
            tuning,
        } => runtime()?.block_on(apply::run(
            &base.with_aws(aws).with_tuning(tuning).with_inputs(inputs)?,
            spec,
            &run.run(),
            &select.selection(),
        )),
        Command::Adopt {
            spec,
            inputs,
            aws,
            run,
            tuning,
            allow_replace,
        } => runtime()?.block_on(adopt::run(
            &base.with_aws(aws).with_tuning(tuning).with_inputs(inputs)?,
            spec,
            &run.run(),
            *allow_replace,
        )),
        Command::Destroy {
            spec,
            inputs,
            aws,
            run,
            tuning,
        } => runtime()?.block_on(destroy::run(
            &base.with_aws(aws).with_tuning(tuning).with_inputs(inputs)?,
            spec,
            &run.run(),
            run.confirm.as_deref(),
        )),
        Command::ForceUnlock { stack, aws, force } => {
            runtime()?.block_on(force_unlock::run(&base.with_aws(aws), stack, *force))
        }
        Command::Show { plan, show } => show::run(&base, plan, show),
        Command::Output {
            args,
            inputs,
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
            let settings = base.with_aws(aws).with_inputs(inputs)?;
            runtime()?.block_on(output::run(&settings, spec, how))
        }
        Command::Verify { spec, inputs, aws } => {
            runtime()?.block_on(verify::run(&base.with_aws(aws).with_inputs(inputs)?, spec))
        }
        Command::Status {
            spec,
            inputs,
            aws,
            detailed_exitcode,
        } => runtime()?.block_on(status::run(
            &base.with_aws(aws).with_inputs(inputs)?,
            spec,
            *detailed_exitcode,
        )),
        Command::Logs {
            spec,
            inputs,
            aws,
            worker,
            follow,
            since,
        } => runtime()?.block_on(logs::run(
            &base.with_aws(aws).with_inputs(inputs)?,
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
