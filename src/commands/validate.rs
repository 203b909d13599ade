//! `validate`: the spec checked offline, every problem at once.

use std::path::Path;
use std::process::ExitCode;

use miette::Result;

use super::Settings;

pub fn run(settings: &Settings, path: &Path) -> Result<ExitCode> {
    let s = settings.load(path)?;
    println!(
        "{}: stack \"{}\" is valid ({} worker(s)).",
        path.display(),
        s.name,
        s.workers.len()
    );
    Ok(ExitCode::SUCCESS)
}
