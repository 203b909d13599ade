//! The stack spec: TOML in, a validated [`Spec`] out. Pure: no AWS, no network.
//!
//! Parsing collects every problem of the file before failing, so a user fixes a spec in one
//! round trip: type errors too (`schema.rs` checks them before serde runs). Only what keeps
//! the file from being read as TOML stops early: invalid UTF-8, nesting deeper than a spec
//! can need (`scan.rs`), a syntax error.

mod env;
pub mod model;
mod paths;
mod raw;
pub mod render;
mod report;
mod scan;
mod schema;
mod validate;

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use miette::{NamedSource, SourceSpan};
use toml::de::DeTable;

pub use model::*;
pub use report::{MAX_SHOWN, MAX_SNIPPET_LINE};
pub use scan::MAX_DEPTH;
pub use validate::{nat_traffic, required_endpoints};

use paths::KeyPath;
use report::invalid;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SpecError {
    #[error("cannot read stack spec {}", .path.display())]
    #[diagnostic(code(spec::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("stack spec {} is invalid ({count} problem{})", .src.name(), if *.count == 1 { "" } else { "s" })]
    #[diagnostic(code(spec::invalid))]
    Invalid {
        /// Every distinct problem; `problems` shows the first [`MAX_SHOWN`] and a count.
        count: usize,
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
    /// `false`: located by `file:line:col` in the message, without the snippet.
    snippet: bool,
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
            snippet: true,
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
    parse_env(source, path, env, region, None)
}

/// [`parse`] with one of the file's environments (`[env.<name>]`, `--env`) merged in; a file
/// with environments needs one, a file without refuses one.
pub fn parse_env(
    source: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    region: Option<&str>,
    environment: Option<&str>,
) -> Result<Spec, SpecError> {
    let file_name = path.display().to_string();
    let fail = |problems: Vec<Problem>| {
        let problems = problems
            .into_iter()
            .map(|p| (p.span.map_or(0, |s| s.offset()), p))
            .collect();
        invalid(&file_name, source, problems, &[])
    };
    if let Some((span, message)) = scan::too_deep(source) {
        return Err(fail(vec![Problem::new(
            message,
            &KeyPath::default(),
            Some(span),
        )]));
    }
    let mut parsed =
        DeTable::parse(source).map_err(|e| fail(vec![toml_problem(&e, source, None)]))?;
    // Every environment's strings are searched for a literal key, not only the selected one's.
    let whole = parsed.clone();
    let (selected, env_problems) = env::select(parsed.get_mut(), environment);
    if !env_problems.is_empty() {
        return Err(invalid(&file_name, source, env_problems, &[]));
    }
    let doc = parsed.get_ref();

    // Type errors first, on a copy that serde then reads with the wrong values taken out.
    let mut fixed = parsed.clone();
    let mut dropped = HashSet::new();
    let mismatches = schema::check(fixed.get_mut(), &mut dropped);
    let mut ignored = Vec::new();
    let raw: raw::RawSpec = serde_ignored::deserialize(toml::Deserializer::from(fixed), |p| {
        ignored.push(KeyPath::from_ignored(&p));
    })
    .map_err(|e| fail(vec![toml_problem(&e, source, Some(doc))]))?;

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
    paths::for_each_string(whole.get_ref(), &mut |key, value, span| {
        if find_api_key(value).is_some() {
            let message = format!(
                "{key} looks like a literal Prefect API key; remove it and set {key_var} (or \
                 [prefect] api_key_file)"
            );
            let problem = Problem {
                snippet: false,
                ..Problem::new(message, &KeyPath::default(), Some(span.clone()))
            };
            problems.push((span.start, problem));
        }
    });
    // A password written into the URL is shown nowhere, not even as a neighbouring line.
    let masks: Vec<Range<usize>> = raw
        .prefect
        .as_ref()
        .and_then(|p| p.get_ref().api_url.as_ref())
        .filter(|url| validate::api_url_credentials(url.get_ref()).is_err())
        .map(|url| url.span())
        .into_iter()
        .collect();

    let file = validate::File {
        doc,
        path,
        dropped: &dropped,
        env: selected.as_ref(),
    };
    let spec = validate::validate(&raw, &file, env, region, &mut problems);
    if problems.is_empty() {
        return Ok(spec);
    }
    Err(invalid(&file_name, source, problems, &masks))
}

/// [`parse`] the bytes of a file, which must be UTF-8: each invalid sequence is reported at
/// its line and byte.
pub fn parse_bytes(
    bytes: &[u8],
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    region: Option<&str>,
) -> Result<Spec, SpecError> {
    parse_bytes_env(bytes, path, env, region, None)
}

/// [`parse_bytes`] for one environment, as [`parse_env`].
pub fn parse_bytes_env(
    bytes: &[u8],
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    region: Option<&str>,
    environment: Option<&str>,
) -> Result<Spec, SpecError> {
    match scan::utf8(bytes) {
        Ok(source) => parse_env(source, path, env, region, environment),
        Err((text, found)) => {
            let problems = found
                .into_iter()
                .map(|(span, message)| {
                    (
                        span.start,
                        Problem::new(message, &KeyPath::default(), Some(span)),
                    )
                })
                .collect();
            Err(invalid(&path.display().to_string(), &text, problems, &[]))
        }
    }
}

/// Read the file then [`parse`].
pub fn load(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    region: Option<&str>,
) -> Result<Spec, SpecError> {
    load_env(path, env, region, None)
}

/// Read the file then [`parse_env`].
pub fn load_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    region: Option<&str>,
    environment: Option<&str>,
) -> Result<Spec, SpecError> {
    let bytes = read(path)?;
    parse_bytes_env(&bytes, path, env, region, environment)
}

fn read(path: &Path) -> Result<Vec<u8>, SpecError> {
    std::fs::read(path).map_err(|source| SpecError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The environments a spec file defines (`[env.<name>]`), sorted; empty for a file without
/// any, or one that is not TOML (parsing it reports why).
pub fn environments(path: &Path) -> Result<Vec<String>, SpecError> {
    let bytes = read(path)?;
    let names = std::str::from_utf8(&bytes)
        .ok()
        .filter(|s| scan::too_deep(s).is_none())
        .and_then(|s| DeTable::parse(s).ok())
        .map(|doc| env::names(doc.get_ref()))
        .unwrap_or_default();
    Ok(names)
}

/// The renderer of every error the binary reports (its miette hook): lines unwrapped, so that
/// a message survives a CI log intact and a flag's name can be searched for.
pub fn report_handler() -> miette::MietteHandler {
    miette::MietteHandlerOpts::new().wrap_lines(false).build()
}

/// Render without colours or terminal detection: for snapshots, logs and non-terminals.
pub fn render_plain(err: &SpecError) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .render_report(&mut out, err)
        .expect("rendering to a String cannot fail");
    out
}

fn toml_problem(err: &toml::de::Error, source: &str, doc: Option<&DeTable>) -> Problem {
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
    let key = span.as_ref().and_then(|s| source.get(s.clone()));
    match key {
        Some(key) if message == "duplicate key" => {
            let key = match key.starts_with(['"', '\'']) {
                true => key.to_owned(),
                false => format!("\"{key}\""),
            };
            let message = format!(
                "duplicate key {key}: it is set earlier in the same table; keep one of the two"
            );
            Problem {
                label: format!("{key} again"),
                ..Problem::new(message, &path, span)
            }
        }
        _ => Problem::new(message, &path, span),
    }
}

/// The nearest of `known` to what was `written`, if it is near enough to be a typo of it.
pub(super) fn nearest<'a>(written: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(written, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) && *d < k.len())
        .min()
        .map(|(_, k)| k)
}

fn unknown_key(doc: &DeTable, key: &KeyPath) -> (usize, Problem) {
    let span = paths::key_span(doc, &key.0);
    let keys = schema::keys(&key.table_keys()).unwrap_or_default();
    let written = key.last_key();
    let expected = match nearest(written, &keys) {
        Some(k) => format!("; did you mean \"{k}\"?"),
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

#[cfg(test)]
mod env_tests;
#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
