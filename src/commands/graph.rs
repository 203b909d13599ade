//! `graph`: the resource graph the spec expands to, as DOT or JSON. No AWS call.

use std::path::Path;
use std::process::ExitCode;

use miette::Result;

use super::{Settings, print};
use crate::cli::GraphFormat;
use crate::graph;

pub fn run(settings: &Settings, path: &Path, format: GraphFormat) -> Result<ExitCode> {
    let s = settings.load(path)?;
    let region = settings
        .region_hint(s.region.as_deref())
        .unwrap_or_else(|| "(region)".into());
    let g = graph::build(&s, &region, None, None)?;
    match format {
        GraphFormat::Dot => print!("{}", g.to_dot()),
        GraphFormat::Json => print::json(&g.to_json()),
    }
    Ok(ExitCode::SUCCESS)
}
