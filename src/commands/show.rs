//! `show`: a saved plan, as it was reviewed. No AWS call.

use std::path::Path;
use std::process::ExitCode;

use miette::{Result, miette};

use super::plan::read_saved_plan;
use super::{Settings, print};
use crate::cli::{PlanFormat, ShowFlags};

pub fn run(settings: &Settings, plan: &Path, show: &ShowFlags) -> Result<ExitCode> {
    let saved = read_saved_plan(plan)?.ok_or_else(|| {
        // The hint names a new file: `--out` of the file shown would overwrite it.
        let out = if plan.extension().is_some_and(|e| e == "plan") {
            Path::new("stack.plan").to_owned()
        } else {
            plan.with_extension("plan")
        };
        miette!(
            "{} is not a saved plan: make one with `prefect-ecs plan --out {} SPEC`",
            plan.display(),
            out.display()
        )
    })?;
    if show.format() == PlanFormat::Human {
        println!(
            "Saved plan of {} (region {}), made {} by prefect-ecs {}.\n",
            saved.spec_path, saved.region, saved.created_at, saved.prefect_ecs_version
        );
    }
    print::plan(&saved.plan, show, settings.style)
}
