//! Human and JSON output of plans and results. Text output is one line per
//! item in plan order, so that two plans diff line by line (`text`), then
//! what needs attention, each cause once (`recap`); JSON output follows
//! `docs/report.schema.json`.

use serde::Serialize;

use crate::exec::Report;
use crate::plan::{Counts, Plan, PlanItem};

pub mod recap;
mod text;

pub use text::{short, text, Style};

/// The `source -> destination` part of a line.
fn refs(item: &PlanItem) -> String {
    let source = item
        .source()
        .map(|s| format!("{}/{}", s.registry, item.image))
        .unwrap_or_else(|| "-".to_string());
    format!("{source} -> {}", item.dest_ref())
}

/// One line, in full: `KIND  SOURCE -> DESTINATION  DIGEST  # REASON`.
pub fn item_line(item: &PlanItem) -> String {
    wide_line(&format!("{:<8}", item.action.name()), item)
}

/// [`item_line`] with the kind as given (coloured, say).
fn wide_line(kind: &str, item: &PlanItem) -> String {
    format!(
        "{kind} {}  {}  # {}",
        refs(item),
        item.digest,
        item.reason()
    )
}

/// The summary line: how many items of each kind the plan has
/// (attachments only when there are some, so that plans without any read
/// as they always did).
pub fn counts_line(counts: &Counts) -> String {
    let attach = if counts.attach > 0 {
        format!(" {} attach,", counts.attach)
    } else {
        String::new()
    };
    let skipped = if counts.attachments_skipped > 0 {
        format!(
            "; {} not an attachment, left behind",
            counts.attachments_skipped
        )
    } else {
        String::new()
    };
    // Shown once a manifest lets a tag move, so other plans read as before.
    let moved = if counts.moved > 0 {
        format!(" {} move,", counts.moved)
    } else {
        String::new()
    };
    format!(
        "plan: {} copy,{attach} {} tag,{moved} {} lost, {} refused, {} conflict, {} blocked, {} already present{skipped}",
        counts.copy,
        counts.tag,
        counts.lost,
        counts.refused,
        counts.conflict,
        counts.blocked,
        counts.already_present
    )
}

/// The whole plan as text, every item in full, then the counts: what a
/// reviewed plan and a fresh one are compared by.
pub fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    for item in &plan.items {
        out.push_str(&item_line(item));
        out.push('\n');
    }
    out.push_str(&counts_line(&plan.counts()));
    out.push('\n');
    out
}

/// The results' summary: done and failed, then what was transferred.
fn results_line(report: &Report) -> String {
    let failed = report.failed().count();
    let s = &report.stats;
    format!(
        "result: {} done, {failed} failed\n  blobs: {} uploaded ({}), {} mounted, {} present\n  written: {} manifests, {} tags, {} attachments",
        report.results.len() - failed,
        s.blobs_uploaded,
        human_bytes(s.bytes_uploaded),
        s.blobs_mounted,
        s.blobs_present,
        s.manifests_written,
        s.tags_written,
        s.attachments_copied,
    )
}

/// `9577 B`, `9.4 KiB`, `1.0 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The JSON document `--output json` prints (schema: docs/report.schema.json).
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    /// Schema version of this document; always 1 for now.
    pub version: u32,
    /// True when nothing was written (no execution ran).
    pub dry_run: bool,
    /// Every planned item, plus what was already present.
    pub plan: &'a Plan,
    /// The plan's items counted by kind, as in the text summary line.
    pub counts: Counts,
    /// What the run did; `None` (and left out of the JSON) on a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution: Option<&'a Report>,
}

/// The plan, and the run's results when there was one, as pretty-printed
/// JSON ([`JsonReport`]).
pub fn json(plan: &Plan, execution: Option<&Report>) -> String {
    let doc = JsonReport {
        version: 1,
        dry_run: execution.is_none(),
        plan,
        counts: plan.counts(),
        execution,
    };
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures::{item, source};
    use crate::plan::Action;
    use crate::reference::{Digest, Tag};

    #[test]
    fn a_line_names_kind_source_destination_digest_and_reason() {
        let digest = Digest::sha256_of(b"x");
        let copy = item_line(&item(Action::Copy { source: source() }));
        assert_eq!(
            copy,
            format!("copy     src.example/stage/foo -> dst.example/prod/foo  {digest}  # digest absent in destination, present in source")
        );
        let tag = item_line(&item(Action::Tag {
            tag: Tag::parse("1.0").unwrap(),
        }));
        assert_eq!(
            tag,
            format!(
                "tag      - -> dst.example/prod/foo:1.0  {digest}  # tag absent in destination"
            )
        );
    }

    #[test]
    fn a_refusal_line_points_at_the_manifest_entry() {
        let current = Digest::sha256_of(b"y");
        let line = item_line(&item(Action::RefusedTagMove {
            tag: Tag::parse("1.0").unwrap(),
            current: current.clone(),
            source: None,
        }));
        assert!(line.starts_with("refused "), "{line}");
        assert!(line.contains(current.as_str()), "{line}");
        assert!(line.contains("images/a/images.yaml:7:5"), "{line}");
    }

    #[test]
    fn json_carries_the_items_and_counts() {
        let plan = Plan {
            items: vec![item(Action::Copy { source: source() })],
            already_present: 2,
            ..Plan::default()
        };
        let value: serde_json::Value = serde_json::from_str(&json(&plan, None)).unwrap();
        assert_eq!(value["version"], 1);
        assert_eq!(value["dry_run"], true);
        assert_eq!(value["plan"]["items"][0]["kind"], "copy");
        assert_eq!(value["counts"]["copy"], 1);
        assert_eq!(value["counts"]["already_present"], 2);
    }
}
