//! The one printer: documents (a plan as text, JSON or Markdown; outputs) go to stdout, notes
//! about the run to stderr, and machine-readable stdout stays exactly the document.

use std::io::IsTerminal;
use std::process::ExitCode;

use miette::{IntoDiagnostic, Result, miette};

use crate::cli::{PlanFormat, RunFlags, ShowFlags};
use crate::progress::{Mode, Progress};
use crate::render::human::{self, Style};
use crate::render::{PlanDoc, markdown};

/// Exit 2 for "there are changes" only when asked: 1 stays "error" either way.
pub fn plan_exit(show: &ShowFlags, doc: &PlanDoc) -> ExitCode {
    if show.detailed_exitcode && !doc.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// A plan in the format asked for; the exit code `--detailed-exitcode` asks for. The header
/// names what the document says the plan acts on.
pub fn plan(doc: &PlanDoc, show: &ShowFlags, style: Style) -> Result<ExitCode> {
    match show.format() {
        PlanFormat::Human => print!("{}", human::render(doc, style)),
        PlanFormat::Json => println!("{}", serde_json::to_string_pretty(doc).into_diagnostic()?),
        PlanFormat::Markdown => print!("{}", markdown::render(doc)),
    }
    Ok(plan_exit(show, doc))
}

/// A note beside a document: on stdout before a human plan, on stderr when stdout is JSON or
/// Markdown.
pub fn note(format: PlanFormat, text: &str) {
    if format == PlanFormat::Human {
        println!("{text}\n");
    } else {
        eprintln!("{text}");
    }
}

/// A JSON document on stdout.
pub fn json(value: &serde_json::Value) {
    println!("{value:#}");
}

/// A run's progress: JSON lines, a live display on a terminal, plain lines in a log.
pub fn progress(run: &RunFlags, style: Style, verb: &'static str) -> Result<Progress> {
    let mode = if run.json {
        if !run.auto_approve {
            return Err(miette!(
                "{verb} --json cannot ask for confirmation: pass --auto-approve (or apply a saved plan)"
            ));
        }
        Mode::Json
    } else if std::io::stdout().is_terminal() {
        Mode::Live
    } else {
        Mode::Lines
    };
    Ok(Progress::new(mode, style, verb))
}
