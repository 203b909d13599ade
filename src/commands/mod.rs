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
    let settings = Settings::resolve(&cli.global);
    let s = &settings;
    match &cli.command {
        Command::Validate { spec } => validate::run(s, spec),
        Command::Graph { spec, format } => graph::run(s, spec, *format),
        Command::Plan {
            spec,
            show,
            out,
            force,
        } => runtime()?.block_on(plan::run(s, spec, show, out.as_deref(), *force)),
        Command::Apply { spec, run } => runtime()?.block_on(apply::run(s, spec, run)),
        Command::Destroy { spec, run } => runtime()?.block_on(destroy::run(s, spec, run)),
        Command::ForceUnlock { stack } => runtime()?.block_on(force_unlock::run(s, stack)),
        Command::Show { plan, show } => show::run(s, plan, show),
        Command::Output { spec, json } => runtime()?.block_on(output::run(s, spec, *json)),
        Command::Verify { spec } => runtime()?.block_on(verify::run(s, spec)),
        Command::Status { spec } => runtime()?.block_on(status::run(s, spec)),
        Command::Logs {
            spec,
            worker,
            follow,
            since,
        } => runtime()?.block_on(logs::run(s, spec, worker.as_deref(), *follow, *since)),
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
