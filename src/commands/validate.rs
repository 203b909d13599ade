//! `validate`: the spec checked offline, every problem at once, and the Prefect credential
//! it names read as `plan` would read it (an unset variable or a missing key file is found
//! here, not at the first plan).

use std::path::Path;
use std::process::ExitCode;

use miette::Result;

use super::Settings;
use super::settings::credential;

pub fn run(settings: &Settings, path: &Path) -> Result<ExitCode> {
    let s = settings.load(path)?;
    credential(&s)?;
    println!(
        "{}: stack \"{}\" is valid ({} worker(s)).",
        path.display(),
        s.name,
        s.workers.len()
    );
    Ok(ExitCode::SUCCESS)
}
