//! The plan as a pull-request comment: a heading, the summary, one table row per change and a
//! collapsed `diff` block per change. Plain text only: no ANSI codes, whatever the terminal.

use std::fmt::Write;

use super::human::{NO_CHANGES, summary_line};
use super::{Action, ChangeDoc, PlanDoc, attr_line, attr_symbol, created_lines, symbol, visible};

pub fn render(doc: &PlanDoc) -> String {
    let mut s = format!("### prefect-ecs plan: stack `{}`\n\n", doc.stack);
    if let Some(t) = &doc.target {
        let env = t
            .env
            .as_ref()
            .map(|e| format!("env `{e}` · "))
            .unwrap_or_default();
        let account = t
            .account
            .as_ref()
            .map(|a| format!("account `{a}` · "))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{env}{account}region `{}` · Prefect workspace `{}`\n",
            t.region, t.workspace
        );
    }
    if !doc.existing.is_empty() {
        let items: Vec<String> = doc.existing.iter().map(|e| format!("`{e}`")).collect();
        let _ = writeln!(s, "Existing, read-only: {}\n", items.join(", "));
    }
    let note = doc.targeting_note().map(|n| format!("> **Note:** {n}\n\n"));
    if doc.is_empty() {
        match note {
            Some(note) => {
                s.push_str("No changes for the targeted resources.\n\n");
                s.push_str(&note);
            }
            None => s.push_str(NO_CHANGES),
        }
        if let Some(cost) = &doc.cost {
            let _ = writeln!(s, "\n{}", cost.lines()[0]);
        }
        return s;
    }
    let _ = writeln!(s, "**{}**\n", summary_line(doc));
    s.push_str(note.as_deref().unwrap_or_default());
    s.push_str("| | Resource | Action | Why |\n|---|---|---|---|\n");
    for c in &doc.changes {
        let _ = writeln!(
            s,
            "| `{}` | `{}` | {} | {} |",
            symbol(c),
            c.address,
            c.action.as_str(),
            cell(&why(c))
        );
    }
    s.push('\n');
    for c in &doc.changes {
        let _ = writeln!(
            s,
            "<details><summary><code>{}</code> {}</summary>\n\n```diff",
            c.address,
            c.action.as_str()
        );
        for line in body(c) {
            let _ = writeln!(s, "{}", line.replace("```", "'''"));
        }
        s.push_str("```\n\n</details>\n\n");
    }
    if let Some(cost) = &doc.cost {
        let lines = cost.lines();
        let _ = writeln!(s, "**{}**\n", lines[0]);
        if lines.len() > 1 {
            s.push_str("```\n");
            for l in &lines[1..] {
                let _ = writeln!(s, "{}", l.trim_start());
            }
            s.push_str("```\n");
        }
    }
    s
}

/// The reason, or the attributes that force a replacement, or the changed paths.
fn why(c: &ChangeDoc) -> String {
    if let Some(r) = &c.reason {
        return r.clone();
    }
    let forcing: Vec<String> = c
        .attributes
        .iter()
        .filter(|a| a.forces_replacement)
        .map(|a| format!("`{}`", a.path))
        .collect();
    match forcing.len() {
        0 => {}
        1 => return format!("{} forces replacement", forcing[0]),
        _ => return format!("{} force replacement", forcing.join(", ")),
    }
    let paths: Vec<String> = c
        .attributes
        .iter()
        .filter(|a| visible(a))
        .map(|a| format!("`{}`", a.path))
        .collect();
    paths.join(", ")
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Lines in `diff` syntax, so GitHub colours additions and removals; a block's lines carry
/// its first line's sign.
fn body(c: &ChangeDoc) -> Vec<String> {
    let signed = |sign: &str, text: String| {
        format!("{sign} {}", text.replace("\n  ", &format!("\n{sign} ")))
    };
    match c.action {
        Action::Create => created_lines(c, 2)
            .into_iter()
            .map(|(k, v)| signed("+", format!("{k} = {v}")))
            .collect(),
        Action::Update | Action::Replace => c
            .attributes
            .iter()
            .filter(|a| visible(a))
            .map(|a| {
                // `diff` colours by the first character: `~` is neither, `!` is "changed".
                let sign = match attr_symbol(a) {
                    "~" => "!",
                    other => other,
                };
                let forces = if a.forces_replacement {
                    "  # forces replacement"
                } else {
                    ""
                };
                signed(sign, format!("{}{forces}", attr_line(a, 2)))
            })
            .collect(),
        Action::Delete => vec![format!(
            "- {}{}",
            c.address,
            c.id.as_ref()
                .map(|id| format!(" (id {id})"))
                .unwrap_or_default()
        )],
    }
}
