//! Environments (issue 13): `[env.<name>]` tables, each an overlay of the file's own shape,
//! one of them selected with `--env`. The overlay is merged into the base document *before*
//! anything else reads it, on toml's span-carrying tree, so that every later check sees one
//! document and reports a key that came from an overlay at the overlay's own line and column.
//!
//! The rules: tables deep-merge, scalars and arrays replace, `[[worker]]` and `[[work_pool]]`
//! entries merge by `name` (a name the base lacks adds an entry). A file with environments has
//! no default one: running it without `--env` is an error, never a silent pick.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::paths::KeyPath;
use super::{Problem, nearest};

/// The arrays of tables whose entries merge by their `name`.
const BY_NAME: &[&str] = &["worker", "work_pool"];

/// The environment a document was merged for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Selected {
    pub name: String,
    /// The overlay sets `[stack] name` itself: the stack is not named `<stack>-<env>`.
    pub names_stack: bool,
}

/// The environments `doc` defines, sorted (`[env.<name>]` tables; anything else under `env`
/// is reported by [`select`]).
pub(super) fn names(doc: &DeTable) -> Vec<String> {
    match doc.get("env").map(|v| v.get_ref()) {
        Some(DeValue::Table(t)) => t.keys().map(|k| k.get_ref().to_string()).collect(),
        _ => Vec::new(),
    }
}

/// Take `env` out of `doc` and merge the selected environment's overlay into it. Problems are
/// returned with their offsets; with any, the merge may be partial (the caller stops).
pub(super) fn select(
    doc: &mut DeTable<'_>,
    selected: Option<&str>,
) -> (Option<Selected>, Vec<(usize, Problem)>) {
    let mut problems = Vec::new();
    let root = KeyPath::default().key("env");
    let mut tables = match doc.remove("env") {
        None => DeTable::new(),
        Some(value) => {
            let span = value.span();
            match value.into_inner() {
                DeValue::Table(t) => t,
                other => {
                    let message = format!(
                        "env is a {}; environments are tables: [env.<name>] with the settings \
                         that differ in that environment",
                        other.type_str()
                    );
                    problems.push(problem(message, &root, Some(span)));
                    return (None, problems);
                }
            }
        }
    };
    let names: Vec<String> = tables.keys().map(|k| k.get_ref().to_string()).collect();
    for (key, value) in tables.iter() {
        let path = root.key(key.get_ref());
        if let Err(message) = env_name(key.get_ref()) {
            problems.push(problem(message, &path, Some(key.span())));
        }
        if !value.get_ref().is_table() {
            let message = format!(
                "env.{} is a {}; an environment is a table of the settings that differ in it, \
                 like [env.{}] with stack.account_id = \"…\"",
                key.get_ref(),
                value.get_ref().type_str(),
                key.get_ref()
            );
            problems.push(problem(message, &path, Some(value.span())));
        }
    }
    let Some(name) = selected else {
        if let Some((first, _)) = tables.iter().next() {
            let message = format!(
                "this file defines environments ({}): choose one with --env <name> (or \
                 PREFECT_ECS_ENV); a file with environments has no default one",
                names.join(", ")
            );
            problems.push(problem(message, &root, Some(first.span())));
        }
        return (None, problems);
    };
    if let Err(message) = env_name(name) {
        problems.push(problem(format!("--env: {message}"), &root, None));
        return (None, problems);
    }
    let Some((_, overlay)) = tables.remove_entry(name) else {
        let message = match names.as_slice() {
            [] => format!(
                "--env {name} was given, but the file defines no environments; add an \
                 [env.{name}] table or leave --env (and PREFECT_ECS_ENV) unset"
            ),
            _ => {
                let known: Vec<&str> = names.iter().map(String::as_str).collect();
                let hint = nearest(name, &known)
                    .map(|k| format!("; did you mean \"{k}\"?"))
                    .unwrap_or_default();
                format!(
                    "no environment \"{name}\" in the file: it defines {}{hint}",
                    names.join(", ")
                )
            }
        };
        problems.push(problem(message, &root, None));
        return (None, problems);
    };
    let DeValue::Table(overlay) = overlay.into_inner() else {
        return (None, problems); // reported above
    };
    let names_stack = matches!(
        overlay.get("stack").map(|s| s.get_ref()),
        Some(DeValue::Table(t)) if t.contains_key("name")
    );
    merge(doc, overlay, &root.key(name), &mut problems);
    let selected = Selected {
        name: name.to_owned(),
        names_stack,
    };
    (Some(selected), problems)
}

/// An environment's name: it is appended to the stack's name, and read in CI logs.
pub(super) fn env_name(name: &str) -> Result<(), String> {
    let valid = (1..=16).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    match valid {
        true => Ok(()),
        false => Err(format!(
            "invalid environment name \"{name}\": use 1 to 16 lower-case letters, digits and \
             hyphens, starting with a letter (it becomes part of the stack's name)"
        )),
    }
}

fn problem(message: String, path: &KeyPath, span: Option<Range<usize>>) -> (usize, Problem) {
    (
        span.as_ref().map_or(0, |s| s.start),
        Problem::new(message, path, span),
    )
}

/// `overlay` into `base`: tables deep, by-name arrays per entry, everything else replaced (the
/// overlay's key taken too, so that a problem with the value points at the overlay).
fn merge<'i>(
    base: &mut DeTable<'i>,
    overlay: DeTable<'i>,
    at: &KeyPath,
    problems: &mut Vec<(usize, Problem)>,
) {
    for (key, value) in overlay {
        let path = at.key(key.get_ref());
        let top = at.0.len() == 2;
        match (base.get_mut(key.get_ref().as_ref()), value.get_ref()) {
            (Some(b), DeValue::Table(_)) if b.get_ref().is_table() => {
                let DeValue::Table(o) = value.into_inner() else {
                    unreachable!("matched a table")
                };
                let DeValue::Table(b) = b.get_mut() else {
                    unreachable!("matched a table")
                };
                merge(b, o, &path, problems);
            }
            (Some(b), DeValue::Array(_))
                if top && BY_NAME.contains(&key.get_ref().as_ref()) && b.get_ref().is_array() =>
            {
                let DeValue::Array(o) = value.into_inner() else {
                    unreachable!("matched an array")
                };
                let DeValue::Array(b) = b.get_mut() else {
                    unreachable!("matched an array")
                };
                for (i, entry) in o.into_iter().enumerate() {
                    let entry_path = path.index(i);
                    let Some(name) = entry_name(&entry) else {
                        let message = format!(
                            "{} entry {i} has no name: an environment's [[{}]] names the \
                             entry it changes (or adds) with name = \"…\"",
                            path,
                            key.get_ref()
                        );
                        problems.push(problem(message, &entry_path, Some(entry.span())));
                        continue;
                    };
                    let same = b
                        .iter_mut()
                        .find(|e| entry_name(e).as_deref() == Some(&name));
                    match (same, entry.get_ref().is_table()) {
                        (Some(existing), true) if existing.get_ref().is_table() => {
                            let DeValue::Table(o) = entry.into_inner() else {
                                unreachable!("checked a table")
                            };
                            let DeValue::Table(t) = existing.get_mut() else {
                                unreachable!("checked a table")
                            };
                            merge(t, o, &entry_path, problems);
                        }
                        _ => b.push(entry),
                    }
                }
            }
            _ => {
                // `insert` keeps an existing key (and its span): replace both.
                base.remove(key.get_ref().as_ref());
                base.insert(key, value);
            }
        }
    }
}

fn entry_name(entry: &Spanned<DeValue>) -> Option<String> {
    match entry.get_ref() {
        DeValue::Table(t) => t.get("name")?.get_ref().as_str().map(str::to_owned),
        _ => None,
    }
}
