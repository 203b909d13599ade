//! The plan as people read it at a terminal or in a CI log: one block per change, then the
//! summary line. Colour only when the caller says so (a terminal, no `NO_COLOR`).

use std::fmt::Write;

use super::{
    Action, ChangeDoc, PlanDoc, ReplaceOrder, attr_line, attr_symbol, created_lines, symbol,
    visible,
};

/// How output may look. Decided once, in `commands`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn sign(self, sign: &str) -> String {
        let code = match sign.trim() {
            "+" => "32",
            "-" => "31",
            "~" => "33",
            _ => "35",
        };
        self.paint(code, sign)
    }

    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
}

pub const NO_CHANGES: &str = "No changes. The stack matches the spec.\n";

/// With what the run acts on in the header (`stack "dev" (env prod) in account
/// 123456789012, us-east-1, Prefect workspace …`) when the document knows it, else the stack's
/// name alone.
pub fn render(doc: &PlanDoc, style: Style) -> String {
    let target = doc.target.as_ref().map(|t| t.describe(&doc.stack));
    let target = target.as_deref();
    if doc.is_empty() {
        if let Some(note) = doc.targeting_note() {
            return format!("No changes for the targeted resources.\n\n{note}\n");
        }
        let mut s = match target {
            Some(target) => format!("No changes. The stack matches the spec ({target}).\n"),
            None => NO_CHANGES.into(),
        };
        if !doc.existing.is_empty() {
            let _ = writeln!(s, "\n{}", doc.existing_lines().join("\n"));
        }
        if let Some(cost) = &doc.cost {
            // Unchanged by definition: the figure alone.
            let _ = writeln!(s, "\n{}", cost.lines()[0]);
        }
        return s;
    }
    let target = target
        .map(str::to_owned)
        .unwrap_or_else(|| format!("stack \"{}\"", doc.stack));
    let mut s = format!("prefect-ecs will perform these actions on {target}:\n\n");
    if !doc.existing.is_empty() {
        let _ = writeln!(s, "{}\n", doc.existing_lines().join("\n"));
    }
    for c in &doc.changes {
        change(&mut s, c, style);
    }
    let _ = writeln!(s, "{}", style.bold(&summary_line(doc)));
    if let Some(note) = doc.targeting_note() {
        let _ = writeln!(s, "\n{note}");
    }
    if let Some(cost) = &doc.cost {
        s.push('\n');
        for line in cost.lines() {
            let _ = writeln!(s, "{line}");
        }
    }
    s
}

pub fn summary_line(doc: &PlanDoc) -> String {
    format!(
        "Plan: {} to add, {} to change, {} to destroy.",
        doc.summary.add, doc.summary.change, doc.summary.destroy
    )
}

fn change(s: &mut String, c: &ChangeDoc, style: Style) {
    let _ = write!(
        s,
        "{} {}",
        style.sign(&format!("{:>3}", symbol(c))),
        c.address
    );
    if let Some(r) = &c.reason {
        let _ = write!(s, "  {}", style.dim(&format!("# {r}")));
    }
    if c.replace_order == Some(ReplaceOrder::CreateBeforeDelete) {
        let _ = write!(
            s,
            "  {}",
            style.dim("# new revision first, old one removed after its users moved")
        );
    }
    s.push('\n');
    if !c.ignore_changes.is_empty() && c.action != Action::Delete {
        let _ = writeln!(
            s,
            "      {}",
            style.dim(&format!(
                "# ignore_changes: {} (set on create, never diffed after)",
                c.ignore_changes.join(", ")
            ))
        );
    }
    match c.action {
        Action::Create => {
            for (k, v) in created_lines(c, 6) {
                let _ = writeln!(s, "      {k} = {v}");
            }
        }
        Action::Update | Action::Replace => {
            if !c.attributes.is_empty() && !c.attributes.iter().any(visible) {
                let _ = writeln!(
                    s,
                    "      {}",
                    style.dim("# only prefect-ecs's own tags change (shown in --json)")
                );
            }
            for a in c.attributes.iter().filter(|a| visible(a)) {
                let forces = if a.forces_replacement {
                    format!("  {}", style.dim("# forces replacement"))
                } else {
                    String::new()
                };
                let _ = writeln!(
                    s,
                    "    {} {}{forces}",
                    style.sign(attr_symbol(a)),
                    attr_line(a, 6)
                );
            }
        }
        Action::Delete => {
            if let Some(id) = &c.id {
                let _ = writeln!(s, "      id = {id}");
            }
        }
    }
    s.push('\n');
}
