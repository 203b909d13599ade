//! `render`: the spec as one environment sees it, written out as a spec file (no AWS call).

use std::path::Path;
use std::process::ExitCode;

use miette::Result;

use super::Settings;
use super::settings::credential;
use crate::spec::render;

pub fn run(settings: &Settings, path: &Path) -> Result<ExitCode> {
    let spec = settings.load(path)?;
    let mut text = render::to_toml(&spec, &path.display().to_string());
    // The spec never holds the key; a variable set to it would print here, so it is masked
    // wherever it appears.
    if let Ok(Some(key)) = credential(&spec) {
        text = key.redact(&text);
    }
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
