//! `validate`: the spec checked offline, every problem at once, and the Prefect credential
//! it names read as `plan` would read it (an unset variable or a missing key file is found
//! here, not at the first plan). A file with environments and no `--env` is checked in every
//! one of them.

use std::path::Path;
use std::process::ExitCode;

use miette::Result;

use super::Settings;
use super::settings::credential;
use crate::spec;

pub fn run(settings: &Settings, path: &Path) -> Result<ExitCode> {
    let environments = spec::environments(path)?;
    if settings.env.is_some() || environments.is_empty() {
        return one(settings, path, settings.env.as_deref());
    }
    let mut failed = Vec::new();
    for env in &environments {
        if let Err(e) = one(settings, path, Some(env)) {
            eprintln!("{e:?}");
            failed.push(env.as_str());
        }
    }
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    Err(miette::miette!(
        "{}: {} of {} environments invalid ({})",
        path.display(),
        failed.len(),
        environments.len(),
        failed.join(", ")
    ))
}

fn one(settings: &Settings, path: &Path, env: Option<&str>) -> Result<ExitCode> {
    let s = settings.load_in(path, env)?;
    credential(&s)?;
    let env = s
        .env
        .as_ref()
        .map(|e| format!(" (env {e})"))
        .unwrap_or_default();
    println!(
        "{}: stack \"{}\"{env} is valid ({} worker(s)).",
        path.display(),
        s.name,
        s.workers.len()
    );
    Ok(ExitCode::SUCCESS)
}
