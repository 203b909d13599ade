//! Reading `plan` output as the user sees it: change lines and the summary line.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
}

/// Every change line (`  + addr`, `  ~ addr`, `-/+ addr` or `+/- addr`, `  - addr`) keyed by address.
/// Attribute lines are indented deeper and never look like `<kind>.<name>` after the marker.
#[track_caller]
pub fn changes(stdout: &str) -> BTreeMap<String, Action> {
    let mut changes = BTreeMap::new();
    for line in stdout.lines() {
        let (action, rest) = if let Some(rest) = line.strip_prefix("  + ") {
            (Action::Create, rest)
        } else if let Some(rest) = line.strip_prefix("  ~ ") {
            (Action::Update, rest)
        } else if let Some(rest) = line
            .strip_prefix("-/+ ")
            .or_else(|| line.strip_prefix("+/- "))
        {
            (Action::Replace, rest)
        } else if let Some(rest) = line.strip_prefix("  - ") {
            (Action::Delete, rest)
        } else {
            continue;
        };
        let address = rest.split_whitespace().next().unwrap_or_default();
        if is_address(address) {
            let previous = changes.insert(address.to_owned(), action);
            assert!(
                previous.is_none(),
                "{address} appears twice in the plan:\n{stdout}"
            );
        }
    }
    changes
}

/// `kind.name` or `kind.name[i]`, kind in snake_case.
fn is_address(s: &str) -> bool {
    let Some((kind, name)) = s.split_once('.') else {
        return false;
    };
    let name = match name.split_once('[') {
        Some((name, index)) => match index.strip_suffix(']') {
            Some(i) if !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => return false,
        },
        None => name,
    };
    !kind.is_empty()
        && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The numbers of `Plan: N to add, N to change, N to destroy.`, or `None` without that line.
pub fn summary(stdout: &str) -> Option<(u32, u32, u32)> {
    stdout.lines().find_map(|line| {
        let rest = line
            .trim()
            .strip_prefix("Plan: ")?
            .strip_suffix(" to destroy.")?;
        let (add, rest) = rest.split_once(" to add, ")?;
        let (change, destroy) = rest.split_once(" to change, ")?;
        Some((
            add.parse().ok()?,
            change.parse().ok()?,
            destroy.parse().ok()?,
        ))
    })
}

/// True when the plan reports a converged stack: `No changes.` and no change line.
pub fn is_converged(stdout: &str) -> bool {
    stdout.lines().any(|l| l.starts_with("No changes.")) && changes(stdout).is_empty()
}
