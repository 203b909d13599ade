//! The shape of the file: which keys each table takes and what type each holds. Checked on
//! the parsed document before serde sees it, so that a type error is reported in the user's
//! words with every other problem of the file instead of stopping the parse (issue 15, item 6).
//! A value of the wrong type is dropped (and its absence not reported again); a single
//! `[worker]` table or a lone zone string is reported and then read as the list it should be,
//! so that its contents are checked too.

use std::collections::HashSet;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::paths::KeyPath;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Text,
    /// A whole number, or a string with `${...}` that becomes one after substitution.
    Number,
    /// `true` / `false`, or a string with `${...}` that becomes one.
    Flag,
    /// A list of strings; the noun names its items ("zones").
    Texts(&'static str),
    /// A table of strings (tags, environment variables).
    TextMap,
    Table(&'static [(&'static str, Type)]),
    /// An array of tables, `[[worker]]`; the noun names one item ("worker").
    Tables(&'static [(&'static str, Type)], &'static str),
}

use Type::*;

pub const ROOT: &[(&str, Type)] = &[
    ("stack", Table(STACK)),
    ("prefect", Table(PREFECT)),
    ("network", Table(NETWORK)),
    ("secret", Table(SECRET)),
    ("iam", Table(IAM)),
    ("service_discovery", Table(&[("namespace", Text)])),
    (
        "logs",
        Table(&[("group", Text), ("retention_days", Number)]),
    ),
    (
        "cluster",
        Table(&[("arn", Text), ("name", Text), ("container_insights", Flag)]),
    ),
    ("cost", Table(COST)),
    ("worker", Tables(WORKER, "worker")),
    (
        "work_pool",
        Tables(&[("name", Text), ("adopt", Flag)], "work pool"),
    ),
];

const STACK: &[(&str, Type)] = &[
    ("name", Text),
    ("region", Text),
    ("account_id", Text),
    ("protected", Flag),
    ("tags", TextMap),
];
const PREFECT: &[(&str, Type)] = &[
    ("account_id", Text),
    ("workspace_id", Text),
    ("api_url", Text),
    ("api_key_env", Text),
    ("api_key_file", Text),
    ("auth_string_env", Text),
    ("auth_string_file", Text),
];
const NETWORK: &[(&str, Type)] = &[
    ("vpc_id", Text),
    ("private_subnet_ids", Texts("subnet ids")),
    ("public_subnet_ids", Texts("subnet ids")),
    ("private_subnet_tags", TextMap),
    ("public_subnet_tags", TextMap),
    ("vpc_name", Text),
    ("cidr", Text),
    ("availability_zones", Texts("zones")),
    ("az_count", Number),
    ("nat", Text),
    ("public_subnets", Texts("CIDR blocks")),
    ("private_subnets", Texts("CIDR blocks")),
    ("task_subnets", Text),
    (
        "endpoints",
        Table(&[("s3", Flag), ("interface", Texts("endpoint services"))]),
    ),
];
const COST: &[(&str, Type)] = &[
    ("nat_gb_per_month", Number),
    ("log_gb_per_month", Number),
    ("endpoint_gb_per_month", Number),
];
const SECRET: &[(&str, Type)] = &[
    ("arn", Text),
    ("name", Text),
    ("recovery_window_days", Number),
    ("kms_key_id", Text),
];
const IAM: &[(&str, Type)] = &[
    ("execution_role_name", Text),
    ("task_role_name", Text),
    ("flow_run_role", Flag),
    ("flow_run_role_name", Text),
    ("path", Text),
    ("permissions_boundary", Text),
];
const WORKER: &[(&str, Type)] = &[
    ("name", Text),
    ("family", Text),
    ("work_pool", Text),
    ("image", Text),
    ("cpu", Number),
    ("memory", Number),
    ("desired_count", Number),
    ("architecture", Text),
    ("env", TextMap),
];

/// The keys of the table at `table` (`""`, `"network"`, `"worker"`), in the order written.
pub fn keys(table: &str) -> Option<Vec<&'static str>> {
    let mut fields = ROOT;
    for key in table.split('.').filter(|k| !k.is_empty()) {
        fields = match fields.iter().find(|(k, _)| *k == key)?.1 {
            Table(inner) | Tables(inner, _) => inner,
            _ => return None,
        };
    }
    Some(fields.iter().map(|(k, _)| *k).collect())
}

/// A type error found: where, and what to say.
pub struct Mismatch {
    pub path: KeyPath,
    pub span: Range<usize>,
    pub message: String,
}

/// Checks `doc` against the schema, fixing it up so that serde cannot fail on a type: values
/// of the wrong type are removed (their paths returned in `dropped`), the two shapes with an
/// obvious reading are rewritten into it. Unknown keys are left for serde_ignored to report.
pub fn check(doc: &mut DeTable, dropped: &mut HashSet<String>) -> Vec<Mismatch> {
    let mut found = Vec::new();
    table(doc, ROOT, &KeyPath::default(), &mut found, dropped);
    found
}

fn table(
    t: &mut DeTable,
    fields: &[(&str, Type)],
    at: &KeyPath,
    found: &mut Vec<Mismatch>,
    dropped: &mut HashSet<String>,
) {
    let mut drop = Vec::new();
    for (key, value) in t.iter_mut() {
        let Some((_, ty)) = fields.iter().find(|(k, _)| *k == key.get_ref().as_ref()) else {
            continue;
        };
        let path = at.key(key.get_ref());
        if let Err(message) = fits(value, *ty, &path, found, dropped) {
            found.push(Mismatch {
                path: path.clone(),
                span: value.span(),
                message,
            });
            dropped.insert(path.to_string());
            drop.push(key.get_ref().to_string());
        }
    }
    for key in drop {
        t.remove(key.as_str());
    }
}

/// `Ok` when `value` fits `ty` (or was rewritten to fit it, the problem already pushed).
fn fits(
    value: &mut Spanned<DeValue>,
    ty: Type,
    path: &KeyPath,
    found: &mut Vec<Mismatch>,
    dropped: &mut HashSet<String>,
) -> Result<(), String> {
    let span = value.span();
    let key = path.last_key().to_owned();
    match (ty, value.get_mut()) {
        (Text, DeValue::String(_)) => Ok(()),
        (Text, v) => Err(format!("expected a string, found {}", describe(v))),
        (Number, DeValue::Integer(_)) => Ok(()),
        (Number | Flag, DeValue::String(s)) if s.contains('$') => Ok(()),
        (Number, DeValue::String(s)) if s.trim().parse::<i64>().is_ok() => Err(format!(
            "expected a number, found the string {s:?}; write {key} = {} without quotes",
            s.trim()
        )),
        (Number, v) => Err(format!("expected a whole number, found {}", describe(v))),
        (Flag, DeValue::Boolean(_)) => Ok(()),
        (Flag, DeValue::String(s)) if matches!(s.trim(), "true" | "false") => Err(format!(
            "expected true or false, found the string {s:?}; write {key} = {} without quotes",
            s.trim()
        )),
        (Flag, v) => Err(format!("expected true or false, found {}", describe(v))),
        (Texts(noun), DeValue::Array(items)) => {
            strings(items, noun, path, found, dropped);
            Ok(())
        }
        (Texts(noun), DeValue::String(s)) => {
            found.push(Mismatch {
                path: path.clone(),
                span: span.clone(),
                message: format!(
                    "expected a list of {noun}, found the string {s:?}; write {key} = [{s:?}]"
                ),
            });
            let one = Spanned::new(span.clone(), DeValue::String(s.clone()));
            *value = Spanned::new(span, DeValue::Array(std::iter::once(one).collect()));
            Ok(())
        }
        (Texts(noun), v) => Err(format!("expected a list of {noun}, found {}", describe(v))),
        (TextMap, DeValue::Table(t)) => {
            let mut drop = Vec::new();
            for (k, v) in t.iter() {
                if !matches!(v.get_ref(), DeValue::String(_)) {
                    let path = path.key(k.get_ref());
                    let hint = match v.get_ref() {
                        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) => {
                            "; quote it".to_owned()
                        }
                        _ => String::new(),
                    };
                    found.push(Mismatch {
                        path: path.clone(),
                        span: v.span(),
                        message: format!(
                            "expected a string, found {}{hint}",
                            describe(v.get_ref())
                        ),
                    });
                    dropped.insert(path.to_string());
                    drop.push(k.get_ref().to_string());
                }
            }
            for k in drop {
                t.remove(k.as_str());
            }
            Ok(())
        }
        (TextMap, v) => Err(format!(
            "expected a table of strings ({key} = {{ NAME = \"value\" }}), found {}",
            describe(v)
        )),
        (Table(fields), DeValue::Table(t)) => {
            table(t, fields, path, found, dropped);
            Ok(())
        }
        (Table(_), DeValue::Array(items))
            if !items.is_empty()
                && items
                    .iter()
                    .all(|i| matches!(i.get_ref(), DeValue::Table(_))) =>
        {
            Err(format!(
                "`[[{path}]]` must be `[{path}]`: a spec has one [{path}] table"
            ))
        }
        (Table(_), v) => Err(format!(
            "expected a table ([{path}]), found {}",
            describe(v)
        )),
        (Tables(fields, _), DeValue::Array(items)) => {
            let mut drop = Vec::new();
            for (i, item) in items.iter_mut().enumerate() {
                let at = path.index(i);
                let span = item.span();
                match item.get_mut() {
                    DeValue::Table(t) => table(t, fields, &at, found, dropped),
                    v => {
                        found.push(Mismatch {
                            path: at.clone(),
                            span,
                            message: format!("expected a [[{key}]] table, found {}", describe(v)),
                        });
                        drop.push(i);
                    }
                }
            }
            keep(items, &drop);
            Ok(())
        }
        (Tables(fields, noun), DeValue::Table(t)) => {
            found.push(Mismatch {
                path: path.clone(),
                span: span.clone(),
                message: format!("`[{key}]` must be `[[{key}]]` (one table per {noun})"),
            });
            let at = path.index(0);
            table(t, fields, &at, found, dropped);
            let one = Spanned::new(span.clone(), DeValue::Table(std::mem::take(t)));
            *value = Spanned::new(span, DeValue::Array(std::iter::once(one).collect()));
            Ok(())
        }
        (Tables(..), v) => Err(format!("expected [[{key}]] tables, found {}", describe(v))),
    }
}

fn strings(
    items: &mut DeArray,
    noun: &str,
    path: &KeyPath,
    found: &mut Vec<Mismatch>,
    dropped: &mut HashSet<String>,
) {
    let mut drop = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if !matches!(item.get_ref(), DeValue::String(_)) {
            found.push(Mismatch {
                path: path.index(i),
                span: item.span(),
                message: format!(
                    "expected a list of {noun} (strings), found {} in it",
                    describe(item.get_ref())
                ),
            });
            dropped.insert(path.index(i).to_string());
            drop.push(i);
        }
    }
    keep(items, &drop);
}

/// Removes the items at the indices in `drop`, ascending (DeArray has no `remove`).
fn keep(items: &mut DeArray, drop: &[usize]) {
    if drop.is_empty() {
        return;
    }
    let mut next = drop.iter().peekable();
    let kept: DeArray = items
        .iter()
        .enumerate()
        .filter(|(i, _)| next.next_if_eq(&i).is_none())
        .map(|(_, v)| v.clone())
        .collect();
    *items = kept;
}

/// A value as a user would name it: `the string "1024"`, `the number 5`, `a table`.
fn describe(value: &DeValue) -> String {
    match value {
        DeValue::String(s) => format!("the string {s:?}"),
        DeValue::Integer(i) if i.radix() == 10 => format!("the number {}", i.as_str()),
        DeValue::Integer(_) => "a number".to_owned(),
        DeValue::Float(f) => format!("the number {}", f.as_str()),
        DeValue::Boolean(b) => format!("{b}"),
        DeValue::Datetime(d) => format!("the date {d}"),
        DeValue::Array(_) => "a list".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}
