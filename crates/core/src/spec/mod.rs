//! The stack spec: TOML in, a validated [`Spec`] out. Pure: no AWS, no network.
//!
//! Parsing collects every problem of the file before failing, so a user fixes a spec in one
//! round trip: type errors too (`schema.rs` checks them before serde runs). Only a TOML syntax
//! error stops early.

pub mod model;
mod paths;
mod raw;
mod schema;
mod validate;

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use miette::{NamedSource, SourceSpan};
use toml::de::DeTable;

pub use model::*;

use paths::KeyPath;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SpecError {
    #[error("cannot read stack spec {}", .path.display())]
    #[diagnostic(code(spec::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("stack spec {file} is invalid ({} problem{})", .problems.len(), if .problems.len() == 1 { "" } else { "s" })]
    #[diagnostic(code(spec::invalid))]
    Invalid {
        file: String,
        /// The file with any literal API key masked, so that no snippet can print one.
        #[source_code]
        src: NamedSource<String>,
        #[related]
        problems: Vec<Problem>,
    },
}

/// One problem of the file, labelled with the offending key path at its location.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
pub struct Problem {
    pub message: String,
    /// The offending key, e.g. `worker[1].cpu`; empty for a syntax error outside any key.
    pub path: String,
    #[label("{label}")]
    pub span: Option<SourceSpan>,
    label: String,
}

impl Problem {
    fn new(message: String, path: &KeyPath, span: Option<Range<usize>>) -> Problem {
        let path = path.to_string();
        let label = if path.is_empty() {
            "here".to_owned()
        } else {
            path.clone()
        };
        Problem {
            message,
            path,
            span: span.map(SourceSpan::from),
            label,
        }
    }
}

/// Parse and validate. `env` looks up environment variables (tests pass a closure over a map).
/// `region`: the region from the command line / AWS config, used when the spec names none.
pub fn parse(
    source: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    region: Option<&str>,
) -> Result<Spec, SpecError> {
    let file = path.display().to_string();
    let fail = |problems: Vec<Problem>| invalid(&file, source, problems);
    let parsed = DeTable::parse(source).map_err(|e| fail(vec![toml_problem(&e, None)]))?;
    let doc = parsed.get_ref();

    // Type errors first, on a copy that serde then reads with the wrong values taken out.
    let mut fixed = parsed.clone();
    let mut dropped = HashSet::new();
    let mismatches = schema::check(fixed.get_mut(), &mut dropped);
    let mut ignored = Vec::new();
    let raw: raw::RawSpec = serde_ignored::deserialize(toml::Deserializer::from(fixed), |p| {
        ignored.push(KeyPath::from_ignored(&p));
    })
    .map_err(|e| fail(vec![toml_problem(&e, Some(doc))]))?;

    let mut problems: Vec<(usize, Problem)> =
        ignored.iter().map(|key| unknown_key(doc, key)).collect();
    problems.extend(mismatches.into_iter().map(|m| {
        let offset = m.span.start;
        (offset, Problem::new(m.message, &m.path, Some(m.span)))
    }));
    // A literal key where the variable's name belongs must not be offered as the name to set.
    let key_var = raw
        .prefect
        .as_ref()
        .and_then(|p| p.get_ref().api_key_env.as_ref())
        .map(|v| v.get_ref().as_str())
        .filter(|v| find_api_key(v).is_none())
        .unwrap_or("PREFECT_API_KEY");
    paths::for_each_string(doc, &mut |key, value, span| {
        if find_api_key(value).is_some() {
            let (line, col) = line_col(source, span.start);
            let message = format!(
                "{file}:{line}:{col}: {key} looks like a literal Prefect API key; \
                 remove it and set {key_var} (or [prefect] api_key_file)"
            );
            problems.push((span.start, Problem::new(message, &KeyPath::default(), None)));
        }
    });

    let at = |offset| {
        let (line, col) = line_col(source, offset);
        format!("{file}:{line}:{col}")
    };
    let file = validate::File {
        doc,
        path,
        dropped: &dropped,
        at: &at,
    };
    let spec = validate::validate(&raw, &file, env, region, &mut problems);
    if problems.is_empty() {
        return Ok(spec);
    }
    problems.sort_by_key(|(offset, _)| *offset);
    Err(fail(problems.into_iter().map(|(_, p)| p).collect()))
}

/// Read the file then [`parse`].
pub fn load(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    region: Option<&str>,
) -> Result<Spec, SpecError> {
    let source = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&source, path, env, region)
}

/// Render without colours or terminal detection: for snapshots, logs and non-terminals.
pub fn render_plain(err: &SpecError) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .render_report(&mut out, err)
        .expect("rendering to a String cannot fail");
    out
}

/// Every message and the source shown in snippets go through `redact`: a key can reach a
/// message through toml's own errors (`invalid type: string "pnu_..."`) or a snippet's context.
fn invalid(file: &str, source: &str, problems: Vec<Problem>) -> SpecError {
    let problems = problems
        .into_iter()
        .map(|p| Problem {
            message: redact(&p.message),
            path: redact(&p.path),
            label: redact(&p.label),
            ..p
        })
        .collect();
    SpecError::Invalid {
        file: file.to_owned(),
        src: NamedSource::new(file, redact(source)),
        problems,
    }
}

fn toml_problem(err: &toml::de::Error, doc: Option<&DeTable>) -> Problem {
    let span = err.span();
    let path = match (doc, &span) {
        (Some(doc), Some(span)) => paths::path_at(doc, span.start),
        _ => KeyPath::default(),
    };
    // serde speaks Rust ("expected u32"); users write TOML.
    let message = err
        .message()
        .trim_end()
        .replace("expected u32", "expected a whole number");
    Problem::new(message, &path, span)
}

fn unknown_key(doc: &DeTable, key: &KeyPath) -> (usize, Problem) {
    let span = paths::key_span(doc, &key.0);
    let keys = schema::keys(&key.table_keys()).unwrap_or_default();
    let written = key.last_key();
    // The nearest known key, if it is near enough to be a typo of it.
    let near = keys
        .iter()
        .map(|k| (strsim::damerau_levenshtein(written, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) && *d < k.len())
        .min();
    let expected = match near {
        Some((_, k)) => format!("; did you mean \"{k}\"?"),
        None if keys.is_empty() => String::new(),
        None => format!(" (expected one of: {})", keys.join(", ")),
    };
    let message = format!("unknown key \"{written}\" {}{expected}", key.location());
    let offset = span.as_ref().map_or(0, |s| s.start);
    (offset, Problem::new(message, key, span))
}

/// The byte range of the first `pnu_[A-Za-z0-9]{20,}` in `text`.
fn find_api_key(text: &str) -> Option<Range<usize>> {
    text.match_indices("pnu_").find_map(|(start, _)| {
        let body = text[start + 4..]
            .bytes()
            .take_while(u8::is_ascii_alphanumeric)
            .count();
        (body >= 20).then_some(start..start + 4 + body)
    })
}

/// Masks keys byte for byte, so spans into the redacted source stay valid.
fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    while let Some(key) = find_api_key(&out) {
        out.replace_range(key.start + 3..key.end, &"*".repeat(key.len() - 3));
    }
    out
}

fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
