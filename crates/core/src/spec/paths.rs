//! Key paths (`worker[1].cpu`) and the walks over toml's span-carrying document tree that
//! serde cannot do for us: locating an ignored key, naming the key under a type error, and
//! visiting every string of the file.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Segment>);

impl KeyPath {
    pub fn key(&self, key: &str) -> KeyPath {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }

    pub fn index(&self, index: usize) -> KeyPath {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    /// Where the last key sits, naming its table as a user writes the header: `in [[worker]]`.
    pub fn location(&self) -> String {
        let table = self.table_keys();
        let parent = self.0.len().checked_sub(2).map(|i| &self.0[i]);
        match parent {
            _ if table.is_empty() => "at the top level".to_owned(),
            Some(Segment::Index(_)) => format!("in [[{table}]]"),
            _ => format!("in [{table}]"),
        }
    }

    /// Table keys without array indices: what `raw::KEYS` is indexed by.
    pub fn table_keys(&self) -> String {
        let parents = &self.0[..self.0.len().saturating_sub(1)];
        let keys: Vec<&str> = parents
            .iter()
            .filter_map(|s| match s {
                Segment::Key(k) => Some(k.as_str()),
                Segment::Index(_) => None,
            })
            .collect();
        keys.join(".")
    }

    pub fn last_key(&self) -> &str {
        match self.0.last() {
            Some(Segment::Key(k)) => k,
            _ => "",
        }
    }

    /// serde_ignored sees through `Option` and `Spanned`, which are not keys of the file.
    pub fn from_ignored(path: &serde_ignored::Path) -> KeyPath {
        use serde_ignored::Path as P;
        let mut out = match path {
            P::Root => return KeyPath::default(),
            P::Seq { parent, .. }
            | P::Map { parent, .. }
            | P::Some { parent }
            | P::NewtypeStruct { parent }
            | P::NewtypeVariant { parent } => KeyPath::from_ignored(parent),
        };
        match path {
            P::Seq { index, .. } => out.0.push(Segment::Index(*index)),
            P::Map { key, .. } if !key.starts_with("$__serde_spanned") => {
                out.0.push(Segment::Key(key.clone()))
            }
            _ => {}
        }
        out
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            let dot = if i == 0 { "" } else { "." };
            match segment {
                // As TOML writes a key that is not bare: `stack.tags."cost#center"`.
                Segment::Key(k)
                    if k.is_empty()
                        || !k
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
                {
                    write!(f, "{dot}{k:?}")?
                }
                Segment::Key(k) => write!(f, "{dot}{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The span of the last key of `path` (the key itself, not its value).
pub fn key_span(table: &DeTable, path: &[Segment]) -> Option<Range<usize>> {
    let (Segment::Key(first), rest) = path.split_first()? else {
        return None;
    };
    let (key, value) = table.get_key_value(first.as_str())?;
    if rest.is_empty() {
        return Some(key.span());
    }
    match (value.get_ref(), rest) {
        (DeValue::Table(t), _) => key_span(t, rest),
        (DeValue::Array(a), [Segment::Index(i), rest @ ..]) => match a.get(*i)?.get_ref() {
            DeValue::Table(t) => key_span(t, rest),
            _ => None,
        },
        _ => None,
    }
}

/// The path of the innermost value at `offset`. Table spans may cover only a header, so every
/// entry is searched rather than only those whose container contains the offset.
pub fn path_at(table: &DeTable, offset: usize) -> KeyPath {
    let mut path = KeyPath::default();
    find_in_table(table, offset, &mut path);
    path
}

fn find_in_table(table: &DeTable, offset: usize, path: &mut KeyPath) -> bool {
    table.iter().any(|(k, v)| {
        path.0.push(Segment::Key(k.get_ref().to_string()));
        let found = find_in_value(v, offset, path) || k.span().contains(&offset);
        if !found {
            path.0.pop();
        }
        found
    })
}

fn find_in_value(value: &Spanned<DeValue>, offset: usize, path: &mut KeyPath) -> bool {
    let inner = match value.get_ref() {
        DeValue::Table(t) => find_in_table(t, offset, path),
        DeValue::Array(a) => a.iter().enumerate().any(|(i, v)| {
            path.0.push(Segment::Index(i));
            let found = find_in_value(v, offset, path);
            if !found {
                path.0.pop();
            }
            found
        }),
        _ => false,
    };
    inner || value.span().contains(&offset)
}

/// Calls `f` with every string value of the document, however deeply nested.
pub fn for_each_string(table: &DeTable, f: &mut dyn FnMut(&KeyPath, &str, Range<usize>)) {
    fn walk(
        value: &Spanned<DeValue>,
        path: &KeyPath,
        f: &mut dyn FnMut(&KeyPath, &str, Range<usize>),
    ) {
        match value.get_ref() {
            DeValue::String(s) => f(path, s, value.span()),
            DeValue::Table(t) => {
                for (k, v) in t.iter() {
                    walk(v, &path.key(k.get_ref()), f);
                }
            }
            DeValue::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(v, &path.index(i), f);
                }
            }
            _ => {}
        }
    }
    for (k, v) in table.iter() {
        walk(v, &KeyPath::default().key(k.get_ref()), f);
    }
}
