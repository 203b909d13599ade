//! From the problems found to the report a user reads: every problem once, at most
//! [`MAX_SHOWN`] of them with a snippet, no snippet miette cannot draw, no secret in any of it.
//!
//! What it costs stays linear in the file and the problems: the file's lines are indexed
//! once, and only the problems shown are located and drawn (each snippet reads the source
//! around it), so 2,000 mistakes cost no more to report than 50 (issue 16).

use std::collections::HashMap;
use std::ops::Range;

use miette::NamedSource;

use super::{Problem, SpecError, find_api_key};

/// The problems drawn with their snippet; the rest are counted.
pub const MAX_SHOWN: usize = 50;
/// The places a repeated problem lists besides the first.
const MAX_PLACES: usize = 5;
/// A snippet is drawn only when every line it shows is at most this long: miette's
/// renderer panics on a label past column 65,535, and a 70 KB line helps nobody anyway.
pub const MAX_SNIPPET_LINE: usize = 1000;

/// Where each line of a text starts.
pub struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a str) -> Lines<'a> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    /// The 0-based line of `offset`.
    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset) - 1
    }

    /// 1-based line and column of a byte offset; the column in bytes, as miette's snippet
    /// headers count it, so that both kinds of location in one report agree.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line(offset);
        (line + 1, offset - self.starts[line] + 1)
    }

    /// Whether a snippet of `span` (with its line of context either side) would show a line
    /// longer than [`MAX_SNIPPET_LINE`].
    fn too_wide(&self, span: &Range<usize>) -> bool {
        let first = self.line(span.start.min(self.text.len())).saturating_sub(1);
        let last = (self.line(span.end.min(self.text.len())) + 1).min(self.starts.len() - 1);
        (first..=last).any(|l| {
            let end = self.starts.get(l + 1).map_or(self.text.len(), |&e| e - 1);
            end.saturating_sub(self.starts[l]) > MAX_SNIPPET_LINE
        })
    }
}

/// The report of `problems` (offset, problem) in `source`, the file named `file`. `masks`
/// are spans of the source never to be shown (a URL with a password in it).
pub fn invalid(
    file: &str,
    source: &str,
    mut problems: Vec<(usize, Problem)>,
    masks: &[Range<usize>],
) -> SpecError {
    problems.sort_by_key(|(offset, _)| *offset);
    // The same message at many places is one problem: a variable referenced 2,500 times is
    // unset once.
    let mut groups: Vec<(Problem, Vec<Problem>)> = Vec::new();
    let mut by_message: HashMap<String, usize> = HashMap::new();
    for (_, problem) in problems {
        match by_message.get(&problem.message) {
            Some(&i) => {
                let (first, others) = &mut groups[i];
                // Sorted by offset, so a place met twice (`${X}-${X}`) is met twice in a row.
                let last = others.last().unwrap_or(first);
                if last.span != problem.span || last.path != problem.path {
                    others.push(problem);
                }
            }
            None => {
                by_message.insert(problem.message.clone(), groups.len());
                groups.push((problem, Vec::new()));
            }
        }
    }
    let count = groups.len();
    let lines = Lines::new(source);
    let at = |offset: usize| {
        let (line, col) = lines.line_col(offset);
        format!("{file}:{line}:{col}")
    };
    let mut shown: Vec<Problem> = groups
        .into_iter()
        .take(MAX_SHOWN)
        .map(|(problem, others)| {
            let mut message = problem.message;
            if !others.is_empty() {
                let places: Vec<String> = others
                    .iter()
                    .take(MAX_PLACES)
                    .map(|p| match &p.span {
                        Some(span) => {
                            format!("{} (line {})", p.path, lines.line_col(span.offset()).0)
                        }
                        None => p.path.clone(),
                    })
                    .collect();
                message = format!("{message}; also at {}", places.join(", "));
                if others.len() > MAX_PLACES {
                    message = format!("{message} and {} more places", others.len() - MAX_PLACES);
                }
            }
            let clipped = problem.span.filter(|s| {
                let span = s.offset()..s.offset() + s.len();
                !problem.snippet || lines.too_wide(&span)
            });
            let span = match clipped {
                Some(s) => {
                    let named = !problem.path.is_empty() && !message.contains(&problem.path);
                    message = match named {
                        true => format!("{}: {}: {message}", at(s.offset()), problem.path),
                        false => format!("{}: {message}", at(s.offset())),
                    };
                    None
                }
                None => problem.span,
            };
            Problem {
                message: redact(&message),
                path: redact(&problem.path),
                label: redact(&problem.label),
                span,
                snippet: span.is_some(),
            }
        })
        .collect();
    if count > MAX_SHOWN {
        let hidden = count - MAX_SHOWN;
        let message = format!(
            "and {hidden} more problem{}, not shown: fix the ones above and validate again",
            if hidden == 1 { "" } else { "s" }
        );
        shown.push(Problem::new(message, &Default::default(), None));
    }
    let mut source = redact(source);
    for mask in masks {
        if source.is_char_boundary(mask.start) && source.is_char_boundary(mask.end) {
            source.replace_range(mask.clone(), &"*".repeat(mask.len()));
        }
    }
    SpecError::Invalid {
        count,
        src: NamedSource::new(file, source),
        problems: shown,
    }
}

/// Masks API keys byte for byte, so spans into the redacted text stay valid. One pass: a
/// file of many keys costs no more than one of few.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(key) = find_api_key(rest) {
        out.push_str(&rest[..key.start + 3]);
        out.push_str(&"*".repeat(key.len() - 3));
        rest = &rest[key.end..];
    }
    out.push_str(rest);
    out
}
