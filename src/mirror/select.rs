//! Which tags an image entry selects, from the tags its source lists. Pure:
//! selectors and a tag list in, tags out; property-tested.

use regex::Regex;
use semver::{Version, VersionReq};

use super::blang;
use crate::diag::Diagnostic;
use crate::manifest::intent::{Located, RangeSyntax, Selectors};
use crate::reference::Tag;

/// Selectors, compiled: what [`choose`] applies.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// Exact tags; empty to start from every listed tag.
    pub exact: Vec<Tag>,
    /// A semver range.
    semver: Option<Range>,
    prerelease: bool,
    /// Whether digests are named directly: then no listing is read.
    pinned: bool,
    regex: Vec<Regex>,
    exclude: Vec<Regex>,
    latest: Option<usize>,
}

impl Compiled {
    /// Whether the source's tag list must be read (anything beyond exact tags).
    pub fn needs_listing(&self) -> bool {
        self.exact.is_empty() && !self.pinned
    }
}

/// A range in one of the two syntaxes.
#[derive(Debug, Clone)]
enum Range {
    /// Cargo's, with `||` alternatives.
    Cargo(Vec<VersionReq>),
    /// blang's (dregsy's).
    Blang(blang::Range),
}

/// Compile `select`, or every problem with its place.
pub fn compile(select: &Selectors) -> Result<Compiled, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let semver = select.semver.as_ref().and_then(|range| {
        let parsed = match select.ranges {
            RangeSyntax::Cargo => parse_range(&range.value)
                .map(Range::Cargo)
                .map_err(|e| e.to_string()),
            RangeSyntax::Blang => blang::Range::parse(&range.value).map(Range::Blang),
        };
        let help = match select.ranges {
            RangeSyntax::Cargo => {
                "write comparators such as \">=1.2.0, <2.0.0\" (|| between alternatives)"
            }
            RangeSyntax::Blang => {
                "write comparators of full versions, spaces between them: \">=1.2.0 <2.0.0\" \
                 (|| between alternatives)"
            }
        };
        parsed
            .map_err(|why| {
                errors.push(
                    Diagnostic::error(
                        range.location.clone(),
                        format!("{:?} is not a semver range: {why}", range.value),
                    )
                    .with_help(help),
                );
            })
            .ok()
    });
    let mut regex = |all: &[Located<String>], key: &str| {
        all.iter()
            .filter_map(|r| match Regex::new(&r.value) {
                Ok(re) => Some(re),
                Err(e) => {
                    errors.push(Diagnostic::error(
                        r.location.clone(),
                        format!("`{key}` is not a regular expression: {e}"),
                    ));
                    None
                }
            })
            .collect::<Vec<_>>()
    };
    let compiled = Compiled {
        exact: select.tags.iter().map(|t| t.value.clone()).collect(),
        semver,
        prerelease: select.prerelease,
        pinned: !select.digests.is_empty(),
        regex: regex(&select.regex, "regex"),
        exclude: regex(&select.exclude, "exclude"),
        latest: select.latest.as_ref().map(|l| l.value),
    };
    if errors.is_empty() {
        Ok(compiled)
    } else {
        Err(errors)
    }
}

/// A range with `||` alternatives; comparators may be separated by commas
/// or, as other tools write them, by spaces (`>=1.2 <2`).
fn parse_range(text: &str) -> Result<Vec<VersionReq>, semver::Error> {
    text.split("||")
        .map(|alternative| {
            let alternative = alternative.trim();
            VersionReq::parse(alternative)
                .or_else(|_| VersionReq::parse(&commas_between_comparators(alternative)))
        })
        .collect()
}

/// `>=1.2.0 <2.0.0` as `>=1.2.0, <2.0.0`: a comma before each operator
/// that follows a version.
fn commas_between_comparators(text: &str) -> String {
    let mut out = String::new();
    let mut after_version = false;
    for word in text.split_whitespace() {
        let operator = word.starts_with(['<', '>', '=', '~', '^']);
        if operator && after_version {
            out.push_str(", ");
        } else if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        after_version = word
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    }
    out
}

/// A tag read as a version, leniently, as mirror tools do: a leading `v`,
/// and missing minor or patch numbers (`1.25` is 1.25.0). `None` for tags
/// that are not versions (`latest`, `stable`).
pub fn version_of(tag: &str) -> Option<Version> {
    let text = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
    let (core, rest) = match text.find(['-', '+']) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut full = parts.join(".");
    for _ in parts.len()..3 {
        full.push_str(".0");
    }
    Version::parse(&format!("{full}{rest}")).ok()
}

/// Whether `tag` passes the semver filter.
fn in_range(compiled: &Compiled, tag: &str) -> bool {
    let alternatives = match &compiled.semver {
        None => return true,
        Some(Range::Blang(range)) => {
            return blang::tolerant(tag).is_some_and(|v| range.matches(&v))
        }
        Some(Range::Cargo(alternatives)) => alternatives,
    };
    let Some(version) = version_of(tag) else {
        return false;
    };
    let release = Version {
        pre: semver::Prerelease::EMPTY,
        ..version.clone()
    };
    alternatives.iter().any(|req| {
        req.matches(&version)
            || (compiled.prerelease && !version.pre.is_empty() && req.matches(&release))
    })
}

/// Newest first: versions by version (newest first), then other tags in
/// reverse lexical order (so that dated tags like `2024-06-01` still sort).
fn newest_first(a: &Tag, b: &Tag) -> std::cmp::Ordering {
    match (version_of(a.as_str()), version_of(b.as_str())) {
        (Some(x), Some(y)) => y.cmp(&x).then_with(|| b.as_str().cmp(a.as_str())),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => b.as_str().cmp(a.as_str()),
    }
}

/// The tags `compiled` selects from `listed` (the source's tags), newest
/// first. Exact tags are taken as given, whether or not they are listed.
pub fn choose(compiled: &Compiled, listed: &[String]) -> Vec<Tag> {
    let candidates: Vec<Tag> = if compiled.needs_listing() {
        listed.iter().filter_map(|t| Tag::parse(t).ok()).collect()
    } else {
        compiled.exact.clone()
    };
    let mut chosen: Vec<Tag> = candidates
        .into_iter()
        .filter(|t| in_range(compiled, t.as_str()))
        .filter(|t| compiled.regex.iter().all(|r| r.is_match(t.as_str())))
        .filter(|t| !compiled.exclude.iter().any(|r| r.is_match(t.as_str())))
        .collect();
    chosen.sort_by(newest_first);
    chosen.dedup();
    if let Some(n) = compiled.latest {
        chosen.truncate(n);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Location;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn at() -> Location {
        Location::file_only(Arc::from(std::path::Path::new("i.yaml")))
    }
    fn located<T>(value: T) -> Option<Located<T>> {
        Some(Located {
            value,
            location: at(),
        })
    }
    fn listed(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| t.to_string()).collect()
    }
    fn names(tags: Vec<Tag>) -> Vec<String> {
        tags.into_iter().map(|t| t.to_string()).collect()
    }
    const SOURCE: &[&str] = &[
        "1.0.0",
        "1.1.0",
        "1.2.0",
        "2.0.0-rc.1",
        "2.0.0",
        "latest",
        "v1.3",
        "stable",
    ];

    #[test]
    fn a_semver_range_with_the_newest_n() {
        let select = Selectors {
            semver: located(">=1.1.0, <2.0.0".to_string()),
            latest: located(2),
            ..Selectors::default()
        };
        let chosen = choose(&compile(&select).unwrap(), &listed(SOURCE));
        assert_eq!(names(chosen), vec!["v1.3", "1.2.0"]);
    }

    #[test]
    fn pre_releases_only_when_asked() {
        let mut select = Selectors {
            semver: located(">=2.0.0-0".to_string()),
            ..Selectors::default()
        };
        let chosen = choose(&compile(&select).unwrap(), &listed(SOURCE));
        assert_eq!(names(chosen), vec!["2.0.0", "2.0.0-rc.1"]);
        select.semver = located(">=1.9.0 <3".to_string());
        assert_eq!(
            names(choose(&compile(&select).unwrap(), &listed(SOURCE))),
            vec!["2.0.0"]
        );
        select.prerelease = true;
        assert_eq!(
            names(choose(&compile(&select).unwrap(), &listed(SOURCE))),
            vec!["2.0.0", "2.0.0-rc.1"]
        );
    }

    #[test]
    fn a_regex_with_an_exclusion_and_exact_tags() {
        let select = Selectors {
            regex: located("^1\\.".to_string()).into_iter().collect(),
            exclude: located("^1\\.0".to_string()).into_iter().collect(),
            ..Selectors::default()
        };
        assert_eq!(
            names(choose(&compile(&select).unwrap(), &listed(SOURCE))),
            vec!["1.2.0", "1.1.0"]
        );
        let exact = Selectors {
            tags: vec![Located {
                value: Tag::parse("stable").unwrap(),
                location: at(),
            }],
            ..Selectors::default()
        };
        assert_eq!(
            names(choose(&compile(&exact).unwrap(), &[])),
            vec!["stable"]
        );
    }

    #[test]
    fn bad_selectors_are_reported_at_their_place() {
        let select = Selectors {
            semver: located("not a range".to_string()),
            regex: located("(".to_string()).into_iter().collect(),
            ..Selectors::default()
        };
        let errors = compile(&select).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].to_string().contains("is not a semver range"));
    }

    #[test]
    fn tags_read_as_versions_leniently() {
        assert_eq!(version_of("v1.25"), Some(Version::new(1, 25, 0)));
        assert_eq!(version_of("3"), Some(Version::new(3, 0, 0)));
        assert!(version_of("1.25-alpine").unwrap().pre.as_str() == "alpine");
        assert_eq!(version_of("latest"), None);
        assert_eq!(version_of("1.2.3.4"), None);
        // A suffix is a pre-release, as semver reads it: left out of ranges
        // unless pre-releases are asked for.
        assert!(!version_of("2024-06-01").unwrap().pre.is_empty());
    }

    proptest! {
        /// Whatever the tags and selectors: the choice is a subset of what
        /// was listed (or of the exact tags), never longer than `latest`,
        /// without repeats, and the same when the listing is shuffled.
        #[test]
        fn choosing_is_a_bounded_deterministic_subset(
            tags in proptest::collection::vec("(v?[0-9]{1,2}(\\.[0-9]{1,2}){0,2}(-rc[0-9])?|latest|stable)", 0..30),
            latest in proptest::option::of(1usize..5),
            low in 0u64..5,
        ) {
            let select = Selectors {
                semver: located(format!(">={low}.0.0")),
                latest: latest.map(|n| Located { value: n, location: at() }),
                ..Selectors::default()
            };
            let compiled = compile(&select).unwrap();
            let chosen = choose(&compiled, &tags);
            for t in &chosen {
                prop_assert!(tags.contains(&t.to_string()));
                let v = version_of(t.as_str()).unwrap();
                prop_assert!(v.major >= low && v.pre.is_empty());
            }
            if let Some(n) = latest {
                prop_assert!(chosen.len() <= n);
            }
            let mut unique = chosen.clone();
            unique.dedup();
            prop_assert_eq!(unique.len(), chosen.len());
            let mut reversed = tags.clone();
            reversed.reverse();
            prop_assert_eq!(choose(&compiled, &reversed), chosen);
        }
    }
}
