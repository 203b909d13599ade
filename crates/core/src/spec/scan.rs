//! What is checked on the bytes before the TOML parser sees them: the encoding, and how deep
//! the file nests. toml's parser recurses once per level, and some unclosed shapes (~1,600
//! `tags = { [stack]` lines) overflow the stack before its own limit answers; a spec needs at
//! most three levels, so a file nested deeper than [`MAX_DEPTH`] is refused with the place
//! where it went too deep (issue 16).

use std::ops::Range;

/// Arrays and inline tables inside one another, and parts of one dotted key.
pub const MAX_DEPTH: usize = 20;

/// Problems found before parsing: where, and what to say.
pub type Located = Vec<(Range<usize>, String)>;

/// Invalid bytes in a row.
struct Bad {
    span: Range<usize>,
    line: usize,
    /// 1-based, in the line.
    byte: usize,
    bytes: Vec<u8>,
}

/// The file as text, or one problem per invalid UTF-8 sequence: its span in the returned
/// text (where each invalid byte reads as `?`, so that offsets are the file's) and the
/// message naming line and byte.
pub fn utf8(bytes: &[u8]) -> Result<&str, (String, Located)> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(text);
    }
    let mut text = String::with_capacity(bytes.len());
    let mut problems: Vec<Bad> = Vec::new();
    let (mut line, mut line_start, mut offset) = (1, 0, 0);
    for chunk in bytes.utf8_chunks() {
        for (i, b) in chunk.valid().bytes().enumerate() {
            if b == b'\n' {
                line += 1;
                line_start = offset + i + 1;
            }
        }
        text.push_str(chunk.valid());
        offset += chunk.valid().len();
        let invalid = chunk.invalid();
        if invalid.is_empty() {
            continue;
        }
        // Bytes that are invalid one after another are one problem.
        match problems.last_mut().filter(|bad| bad.span.end == offset) {
            Some(bad) => {
                bad.span.end += invalid.len();
                bad.bytes.extend_from_slice(invalid);
            }
            None => problems.push(Bad {
                span: offset..offset + invalid.len(),
                line,
                byte: offset - line_start + 1,
                bytes: invalid.to_vec(),
            }),
        }
        text.push_str(&"?".repeat(invalid.len()));
        offset += invalid.len();
    }
    let problems = problems
        .into_iter()
        .map(|bad| {
            let shown: Vec<String> = bad.bytes.iter().map(|b| format!("0x{b:02x}")).collect();
            let message = format!(
                "the file is not valid UTF-8: {} at line {}, byte {} of the line; save the file \
                 as UTF-8",
                shown.join(" "),
                bad.line,
                bad.byte,
            );
            (bad.span, message)
        })
        .collect();
    Err((text, problems))
}

#[derive(Clone, Copy)]
enum Open {
    Array,
    /// An inline table; `true` once its current key's `=` is read.
    Inline(bool),
}

/// The first place `source` nests deeper than [`MAX_DEPTH`], with what to say. A lexer of
/// TOML's brackets, strings, comments and key dots only: what it gets wrong on a malformed
/// file the parser reports after it.
pub fn too_deep(source: &str) -> Option<(Range<usize>, String)> {
    let b = source.as_bytes();
    let mut open: Vec<Open> = Vec::new();
    // A top-level line after its `=`.
    let mut top_value = false;
    let mut parts = 1;
    let mut i = 0;
    while i < b.len() {
        let in_key = match open.last() {
            None => !top_value,
            Some(Open::Array) => false,
            Some(Open::Inline(value)) => !value,
        };
        match b[i] {
            b'#' => {
                i += b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .unwrap_or(b.len() - i);
                continue;
            }
            b'"' | b'\'' => {
                i = string_end(b, i);
                continue;
            }
            b'\n' if open.is_empty() => {
                top_value = false;
                parts = 1;
            }
            b'=' if in_key => {
                match open.last_mut() {
                    None => top_value = true,
                    Some(Open::Inline(value)) => *value = true,
                    Some(Open::Array) => {}
                }
                parts = 1;
            }
            b',' => {
                if let Some(Open::Inline(value)) = open.last_mut() {
                    *value = false;
                    parts = 1;
                }
            }
            b'.' if in_key => {
                parts += 1;
                if parts > MAX_DEPTH {
                    let message = format!(
                        "this key has more than {MAX_DEPTH} dotted parts (a stack spec needs at \
                         most 3); prefect-ecs reads no deeper"
                    );
                    return Some((i..i + 1, message));
                }
            }
            // A table header's brackets, not a nesting.
            b'[' | b']' if open.is_empty() && in_key => {}
            c @ (b'[' | b'{') => {
                open.push(if c == b'[' {
                    Open::Array
                } else {
                    Open::Inline(false)
                });
                parts = 1;
                if open.len() > MAX_DEPTH {
                    let message = format!(
                        "arrays and inline tables nested more than {MAX_DEPTH} deep (a stack \
                         spec needs at most 3); is a closing bracket missing before this one?"
                    );
                    return Some((i..i + 1, message));
                }
            }
            b']' | b'}' => {
                open.pop();
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The offset just past the string starting at `start` (or the end of its line when it is
/// not closed there, for the single-line kinds).
fn string_end(b: &[u8], start: usize) -> usize {
    let quote = b[start];
    let basic = quote == b'"';
    let triple = b[start..].starts_with(&[quote; 3]);
    let mut i = start + if triple { 3 } else { 1 };
    while i < b.len() {
        match b[i] {
            b'\\' if basic => i += 1,
            b'\n' if !triple => return i,
            c if c == quote && (!triple || b[i..].starts_with(&[quote; 3])) => {
                return i + if triple { 3 } else { 1 };
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}
