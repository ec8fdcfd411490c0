//! What needs attention, said once: every distinct cause of the edges that
//! failed, were blocked, refused or lost, with how many edges it touched
//! and a few of them as examples. A registry that is down or refuses the
//! credentials fails every edge that touches it with the same cause; the
//! recap says it once, real cause first, instead of once per line.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;

use crate::exec::{FailureKind, Outcome, Report};
use crate::plan::{Action, Plan, PlanItem};

/// How many example references a cause lists.
const EXAMPLES: usize = 3;

/// One cause, and the edges it touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// What went wrong, in words shared by every edge it touched.
    pub text: String,
    /// How many edges.
    pub count: usize,
    /// A few of them (`registry/image:tag`), in plan order.
    pub examples: Vec<String>,
}

/// Every cause in `plan` (and its `execution`), most edges first; and how
/// many edges failed only because what they depend on failed.
pub fn causes(plan: &Plan, execution: Option<&Report>) -> (Vec<Cause>, usize) {
    let mut by_text: BTreeMap<String, (usize, Cause)> = BTreeMap::new();
    let mut add = |text: String, example: String| {
        let next = by_text.len();
        let (_, cause) = by_text.entry(text.clone()).or_insert_with(|| {
            (
                next,
                Cause {
                    text,
                    count: 0,
                    examples: Vec::new(),
                },
            )
        });
        cause.count += 1;
        if cause.examples.len() < EXAMPLES && !cause.examples.contains(&example) {
            cause.examples.push(example);
        }
    };
    for item in &plan.items {
        if let Some(text) = problem(item) {
            add(text, item.dest_ref());
        }
    }
    let mut dependent = 0;
    for result in execution.map(|e| e.results.as_slice()).unwrap_or_default() {
        let Outcome::Failed(failure) = &result.outcome else {
            continue;
        };
        if failure.kind == FailureKind::Dependency {
            dependent += 1;
            continue;
        }
        add(shared(&failure.cause), result.item.dest_ref());
    }
    let mut causes: Vec<(usize, Cause)> = by_text.into_values().collect();
    causes.sort_by(|(a_first, a), (b_first, b)| b.count.cmp(&a.count).then(a_first.cmp(b_first)));
    (causes.into_iter().map(|(_, c)| c).collect(), dependent)
}

/// The cause of a plan item that is not work, in shared words.
fn problem(item: &PlanItem) -> Option<String> {
    match &item.action {
        Action::Blocked { reason, .. } => Some(format!("blocked: {}", shared(reason))),
        Action::RefusedTagMove { .. } => Some(
            "refused: the tag points at another digest, and a promoted tag never moves \
             (promote the new digest under a new tag)"
                .to_string(),
        ),
        Action::Gated { reason, .. } => Some(format!("refused by the gate: {reason}")),
        Action::Conflict { .. } => {
            Some("conflict: two manifest entries want the tag on different digests".to_string())
        }
        Action::Lost(_) => Some(
            "lost: the digest is in neither the source nor the destination (the manifest names \
             a digest nobody has)"
                .to_string(),
        ),
        _ => None,
    }
}

/// `reason` in the words every edge of the same cause shares: the real
/// cause first (what made the attachments unknown, not that they are), and
/// without the request path and digest that differ from edge to edge.
pub fn shared(reason: &str) -> String {
    static PATTERNS: OnceLock<[(Regex, &str); 3]> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        [
            // `attachments of reg/repo@sha256:...: ` and `its attachments are unknown: `.
            (
                Regex::new(r"^(its attachments are unknown: )?(attachments of \S+: )?").unwrap(),
                "",
            ),
            // `HEAD http://host:port/v2/...` -> `http://host:port`.
            (
                Regex::new(
                    r"\b(?:HEAD|GET|PUT|POST|PATCH|DELETE) (https?://[^/\s]+)(?:/\S*?)?(: |\s|$)",
                )
                .unwrap(),
                "$1$2",
            ),
            (
                Regex::new(r"sha(256|512):[0-9a-f]{12,}").unwrap(),
                "sha$1:…",
            ),
        ]
    });
    let unknown_attachments = reason.starts_with("its attachments are unknown: ");
    let mut text = reason.to_string();
    for (pattern, with) in patterns {
        text = pattern.replace_all(&text, *with).into_owned();
    }
    if unknown_attachments {
        text.push_str(" (so the attachments, which must come along, are unknown)");
    }
    text
}

/// The recap as text: nothing when all went well.
pub fn text(plan: &Plan, execution: Option<&Report>) -> String {
    let (causes, dependent) = causes(plan, execution);
    if causes.is_empty() && dependent == 0 {
        return String::new();
    }
    let mut out = String::from("what needs attention:\n");
    for cause in &causes {
        let edges = if cause.count == 1 { "edge" } else { "edges" };
        // Not wrapped: a cause is searched for and copied whole.
        out.push_str(&format!("  {} {edges}: {}\n", cause.count, cause.text));
        out.push_str(&examples_line(cause));
    }
    if dependent > 0 {
        out.push_str(&format!(
            "  {dependent} more edge(s) not tried: what they depend on (their image's copy) failed\n"
        ));
    }
    out
}

/// The widest examples line, as the plan lines.
const WIDTH: usize = 100;

/// `    e.g. a, b and N more`: as many examples as fit in [`WIDTH`] columns
/// (at least one).
fn examples_line(cause: &Cause) -> String {
    let mut shown: Vec<&str> = Vec::new();
    for (i, example) in cause.examples.iter().enumerate() {
        let more = cause.count - i - 1;
        let mut candidate = shown.clone();
        candidate.push(example);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        let line = format!("    e.g. {}{tail}", candidate.join(", "));
        if !shown.is_empty() && line.chars().count() > WIDTH {
            break;
        }
        shown = candidate;
    }
    let more = cause.count - shown.len();
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("    e.g. {}{tail}\n", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures::item;
    use crate::plan::Edge;

    fn blocked(reason: &str) -> PlanItem {
        item(Action::Blocked {
            reason: reason.to_string(),
            edge: Edge::default(),
        })
    }

    #[test]
    fn one_registry_down_is_one_cause_with_its_count_and_examples() {
        let down = |path: &str| {
            format!("HEAD http://127.0.0.1:9/v2/prod/{path}/manifests/1.0: connection refused: is the registry running there? (os error 111)")
        };
        let mut items: Vec<PlanItem> = (0..20)
            .map(|n| blocked(&down(&format!("app{n}"))))
            .collect();
        for (n, item) in items.iter_mut().enumerate() {
            item.image = crate::reference::ImageName::parse(&format!("app{n}")).unwrap();
        }
        let plan = Plan {
            items,
            ..Plan::default()
        };
        let (causes, _) = causes(&plan, None);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].count, 20);
        assert_eq!(causes[0].examples.len(), 3);
        assert_eq!(
            causes[0].text,
            "blocked: http://127.0.0.1:9: connection refused: is the registry running there? (os error 111)"
        );
        let shown = text(&plan, None);
        assert_eq!(shown.matches("connection refused").count(), 1, "{shown}");
        assert!(shown.contains(" more\n"), "{shown}");
        let examples = shown.lines().find(|l| l.starts_with("    e.g.")).unwrap();
        assert!(examples.chars().count() <= WIDTH, "{shown}");
    }

    #[test]
    fn the_real_cause_comes_first() {
        let reason = "its attachments are unknown: attachments of src/app@sha256:0123456789abcdef: GET https://src/v2/app/tags/list: HTTP 500";
        let text = shared(reason);
        assert!(text.starts_with("https://src: HTTP 500"), "{text}");
        assert!(text.ends_with("are unknown)"), "{text}");
    }

    #[test]
    fn all_well_says_nothing() {
        assert_eq!(text(&Plan::default(), None), "");
    }
}
