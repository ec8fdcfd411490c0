//! The text report for people: one line per item in plan order (so that
//! two plans diff line by line), aligned to fit 100 columns for ordinary
//! names (kind, destination, short digest, outcome), then the counts, a
//! summary per destination, and what needs attention. `wide` puts each
//! item's source, full digest and reason on its line instead.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::exec::{Outcome, Report};
use crate::plan::{Action, Plan, PlanItem};
use crate::reference::Digest;

use super::{counts_line, recap, refs, results_line, wide_line};

/// How the text report looks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// Every item in full: source, full digest, reason (`--wide`, `-v`).
    pub wide: bool,
    /// Kinds and outcomes in colour (ANSI), for a terminal.
    pub color: bool,
}

/// The widest destination column; longer names overflow their own line.
const REF_COLUMN: usize = 64;

/// The text report of a run: the plan, or, once it was carried out, what
/// was not work (lost, refused, blocked) and every work item with its
/// outcome; then the counts, a summary per destination and the recap.
pub fn text(plan: &Plan, execution: Option<&Report>, style: Style) -> String {
    let mut out = String::new();
    match execution {
        None => lines(&mut out, plan.items.iter().map(|i| (i, None)), style),
        Some(report) => {
            let problems = plan.items.iter().filter(|i| !i.action.is_work());
            let results = report.results.iter().map(|r| (&r.item, Some(&r.outcome)));
            lines(&mut out, problems.map(|i| (i, None)).chain(results), style);
        }
    }
    out.push_str(&counts_line(&plan.counts()));
    out.push('\n');
    if let Some(report) = execution {
        out.push_str(&results_line(report));
        out.push('\n');
    }
    out.push_str(&per_destination(plan, execution));
    out.push_str(&recap::text(plan, execution));
    out
}

/// One line per item, aligned.
fn lines<'a>(
    out: &mut String,
    items: impl Iterator<Item = (&'a PlanItem, Option<&'a Outcome>)>,
    style: Style,
) {
    let items: Vec<_> = items.collect();
    let width = items
        .iter()
        .map(|(i, _)| narrow_ref(i).chars().count())
        .max()
        .unwrap_or(0)
        .min(REF_COLUMN);
    for (item, outcome) in items {
        let kind = paint(
            &format!("{:<8}", item.action.name()),
            kind_color(&item.action),
            style,
        );
        let line = if style.wide {
            let status = match outcome {
                None => String::new(),
                Some(Outcome::Done) => "done".to_string(),
                Some(Outcome::Failed(f)) => format!("FAILED: {}", f.error),
            };
            match outcome {
                None => wide_line(&kind, item),
                Some(_) => format!("{kind} {}  {}  {status}", refs(item), item.digest),
            }
        } else {
            let digest = short(shown_digest(item));
            let status = match outcome {
                None => String::new(),
                Some(Outcome::Done) => format!("  {}", paint("done", "32", style)),
                Some(Outcome::Failed(_)) => format!("  {}", paint("FAILED", "1;31", style)),
            };
            format!("{kind} {:<width$}  {digest}{status}", narrow_ref(item))
        };
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// The destination as the narrow line shows it: an attachment by its
/// image and what it is, not its long cosign tag.
fn narrow_ref(item: &PlanItem) -> String {
    match &item.action {
        Action::Attach { tag, .. } => {
            let what = match tag.as_ref().map(|t| t.as_str()) {
                Some(t) if t.ends_with(".sig") => "signature",
                Some(t) if t.ends_with(".att") => "attestation",
                Some(t) if t.ends_with(".sbom") => "sbom",
                Some(_) => "attachment",
                None => "referrer",
            };
            format!("{}/{} ({what})", item.registry, item.image)
        }
        _ => item.dest_ref(),
    }
}

/// The digest the narrow line names: an attachment's own.
fn shown_digest(item: &PlanItem) -> &Digest {
    match &item.action {
        Action::Attach { attachment, .. } => attachment,
        _ => &item.digest,
    }
}

/// `sha256:` and the first 12 hex digits: enough to tell digests apart
/// on a line (`--wide` and JSON have them whole).
pub fn short(digest: &Digest) -> String {
    let hex = digest.hex();
    format!(
        "{}:{}",
        digest.algorithm().as_str(),
        &hex[..hex.len().min(12)]
    )
}

fn kind_color(action: &Action) -> &'static str {
    match action {
        Action::Copy { .. } | Action::Tag { .. } | Action::Attach { .. } => "32",
        Action::Move { .. } | Action::Lost(_) => "33",
        Action::RefusedTagMove { .. } | Action::Gated { .. } | Action::Conflict { .. } => "1;31",
        Action::Blocked { .. } => "31",
    }
}

fn paint(text: &str, code: &str, style: Style) -> String {
    if style.color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// One line per destination registry, when there are several: what the
/// plan has for it, and (once carried out) how it went.
fn per_destination(plan: &Plan, execution: Option<&Report>) -> String {
    #[derive(Default)]
    struct Seen {
        kinds: BTreeMap<&'static str, usize>,
        done: usize,
        failed: usize,
    }
    let mut by: BTreeMap<String, Seen> = BTreeMap::new();
    for item in &plan.items {
        let seen = by.entry(item.registry.to_string()).or_default();
        *seen.kinds.entry(item.action.name()).or_default() += 1;
    }
    for result in execution.map(|e| e.results.as_slice()).unwrap_or_default() {
        let seen = by.entry(result.item.registry.to_string()).or_default();
        match result.outcome {
            Outcome::Done => seen.done += 1,
            Outcome::Failed(_) => seen.failed += 1,
        }
    }
    if by.len() < 2 {
        return String::new();
    }
    let mut out = String::new();
    for (registry, seen) in by {
        let kinds: Vec<String> = seen.kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let ran = match execution {
            Some(_) => format!("; {} done, {} failed", seen.done, seen.failed),
            None => String::new(),
        };
        let _ = writeln!(out, "  {registry}: {}{ran}", kinds.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures::{item, source, tag_1_0};

    #[test]
    fn narrow_lines_are_aligned_short_and_without_reasons() {
        let plan = Plan {
            items: vec![item(Action::Copy { source: source() }), item(tag_1_0())],
            ..Plan::default()
        };
        let shown = text(&plan, None, Style::default());
        let lines: Vec<&str> = shown.lines().collect();
        let short = short(&Digest::sha256_of(b"x"));
        assert_eq!(
            lines[0],
            format!("copy     dst.example/prod/foo      {short}")
        );
        assert_eq!(
            lines[1],
            format!("tag      dst.example/prod/foo:1.0  {short}")
        );
        assert!(lines.iter().all(|l| l.chars().count() <= 100), "{shown}");
        assert!(!shown.contains('#'), "no reasons: {shown}");
        let wide = text(
            &plan,
            None,
            Style {
                wide: true,
                color: false,
            },
        );
        assert!(wide.contains("# tag absent in destination"), "{wide}");
        assert!(wide.contains(Digest::sha256_of(b"x").as_str()), "{wide}");
    }

    #[test]
    fn colour_marks_kinds_only_when_asked() {
        let plan = Plan {
            items: vec![item(tag_1_0())],
            ..Plan::default()
        };
        assert!(!text(&plan, None, Style::default()).contains('\x1b'));
        let coloured = text(
            &plan,
            None,
            Style {
                wide: false,
                color: true,
            },
        );
        assert!(coloured.starts_with("\x1b[32mtag"), "{coloured:?}");
    }
}
