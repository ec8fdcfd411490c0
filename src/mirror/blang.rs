//! Version ranges as dregsy reads them (its `semver:` tag filters, through
//! github.com/blang/semver v4): comparators separated by spaces are ANDed,
//! `||` ORs groups, `1.2.x` wildcards, `!`/`!=`, and versions ordered by
//! semver precedence, a pre-release below its release (`1.31.1-musl` is
//! above 1.31.0 and below 1.31.1). Cargo's ranges (the intent's own
//! `semver:`) differ in syntax and leave pre-releases out; a dregsy file is
//! read as dregsy reads it. Pure.

use std::cmp::Ordering;

use semver::Version;

/// A parsed range: alternatives of ANDed comparators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Range(Vec<Vec<(Op, Version)>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Range {
    /// Parse `text` as blang's `ParseRange` does; the error is blang's.
    pub(super) fn parse(text: &str) -> Result<Range, String> {
        let parts = split_and_trim(text);
        let mut groups: Vec<Vec<String>> = Vec::new();
        let mut current = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            if part == "||" {
                if i == 0 {
                    return Err("First element in range is '||'".into());
                }
                groups.push(std::mem::take(&mut current));
            } else {
                current.push(part.clone());
            }
        }
        if current.is_empty() {
            return Err("Last element in range is '||'".into());
        }
        groups.push(current);
        let mut out = Vec::new();
        for group in groups {
            let mut and = Vec::new();
            for part in expand_wildcards(&group)? {
                let (op, version) = split_comparator(&part)?;
                let op = match op {
                    "" | "=" | "==" => Op::Eq,
                    "!" | "!=" => Op::Ne,
                    ">" => Op::Gt,
                    ">=" => Op::Ge,
                    "<" => Op::Lt,
                    "<=" => Op::Le,
                    other => {
                        return Err(format!(
                            "Could not parse Range {part:?}: Could not parse comparator {other:?} in {part:?}"
                        ))
                    }
                };
                let version = Version::parse(version).map_err(|e| {
                    format!(
                        "Could not parse Range {part:?}: Could not parse version {version:?} in {part:?}: {e}"
                    )
                })?;
                and.push((op, version));
            }
            out.push(and);
        }
        Ok(Range(out))
    }

    /// Whether `version` is in the range (build metadata never counts).
    pub(super) fn matches(&self, version: &Version) -> bool {
        self.0.iter().any(|and| {
            and.iter().all(|(op, v)| {
                let order = version.cmp_precedence(v);
                match op {
                    Op::Eq => order == Ordering::Equal,
                    Op::Ne => order != Ordering::Equal,
                    Op::Gt => order == Ordering::Greater,
                    Op::Ge => order != Ordering::Less,
                    Op::Lt => order == Ordering::Less,
                    Op::Le => order != Ordering::Greater,
                }
            })
        })
    }
}

/// A tag read as blang's `ParseTolerant` reads it: spaces trimmed, one
/// leading `v` dropped, leading zeros dropped, `1.31` read as 1.31.0 (but
/// `1.31-musl` is no version), and a suffix after `M.m.p` a pre-release.
pub(super) fn tolerant(tag: &str) -> Option<Version> {
    let text = tag.trim();
    let text = text.strip_prefix('v').unwrap_or(text);
    let mut parts: Vec<String> = text.splitn(3, '.').map(str::to_string).collect();
    for part in &mut parts {
        if part.len() > 1 {
            let trimmed = part.trim_start_matches('0');
            *part = if trimmed.starts_with(|c: char| c.is_ascii_digit()) {
                trimmed.to_string()
            } else {
                format!("0{trimmed}")
            };
        }
    }
    if parts.len() < 3 {
        if parts.last().is_some_and(|p| p.contains(['+', '-'])) {
            return None;
        }
        parts.resize(3, "0".to_string());
    }
    Version::parse(&parts.join(".")).ok()
}

/// blang's `splitAndTrim`: split at spaces, except after `>`, `<` or `=`
/// (so `>= 1.0.0` is one comparator), spaces removed from each part.
fn split_and_trim(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let (mut last, mut last_char) = (0usize, 0u8);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b' ' && !matches!(last_char, b'>' | b'<' | b'=') {
            if i > 0 && last < i - 1 {
                out.push(text[last..i].to_string());
            }
            last = i + 1;
        } else if b != b' ' {
            last_char = b;
        }
    }
    if !bytes.is_empty() && last < bytes.len() - 1 {
        out.push(text[last..].to_string());
    }
    out.into_iter().map(|p| p.replace(' ', "")).collect()
}

/// The comparator and the version of one part, split at its first digit.
fn split_comparator(part: &str) -> Result<(&str, &str), String> {
    let at = part
        .find(|c: char| c.is_ascii_digit())
        .ok_or_else(|| format!("Could not get version from string: {part:?}"))?;
    Ok((part[..at].trim(), &part[at..]))
}

/// blang's `expandWildcardVersion`: `>=1.2.x` is `>=1.2.0`, `1.x` is
/// `>=1.0.0 <2.0.0`, and so on, exactly as it rewrites them (`!=1.x`
/// included, which it turns into two ANDed comparators).
fn expand_wildcards(parts: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for part in parts {
        if !part.contains('x') {
            out.push(part.clone());
            continue;
        }
        let (op, version) = split_comparator(part)?;
        let components = version.split('.').count();
        let wildcard = version.rsplit('.').next() == Some("x");
        let flat = {
            let v = version.replacen(".x.x", ".x", 1).replacen(".x", ".0", 1);
            if v.split('.').count() == 2 {
                format!("{v}.0")
            } else {
                v
            }
        };
        let (result_op, increment) = match op {
            ">" => (">=", true),
            ">=" => (">=", false),
            "<" => ("<", false),
            "<=" => ("<", true),
            "" | "=" | "==" => {
                out.push(format!(">={flat}"));
                ("<", true)
            }
            "!=" | "!" => {
                out.push(format!("<{flat}"));
                (">=", true)
            }
            _ => ("", false),
        };
        let version = if increment && wildcard {
            increment_at(&flat, if components == 3 { 1 } else { 0 })
        } else if increment {
            String::new()
        } else {
            flat
        };
        out.push(format!("{result_op}{version}"));
    }
    Ok(out)
}

fn increment_at(version: &str, index: usize) -> String {
    let mut parts: Vec<String> = version.split('.').map(str::to_string).collect();
    if let Some(n) = parts.get(index).and_then(|p| p.parse::<u64>().ok()) {
        parts[index] = (n + 1).to_string();
    }
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matching(range: &str, tags: &[&str]) -> Vec<String> {
        let range = Range::parse(range).unwrap();
        tags.iter()
            .filter(|t| tolerant(t).is_some_and(|v| range.matches(&v)))
            .map(|t| t.to_string())
            .collect()
    }

    /// blang's `TestParseRange` and `TestExpandWildcardVersion`, the cases
    /// dregsy's filters rely on (files/_blang-semver-v4/range_test.go).
    #[test]
    fn blang_range_cases() {
        let cases: &[(&str, &[(&str, bool)])] = &[
            (
                ">1.0.0",
                &[("1.0.1", true), ("1.0.0", false), ("0.9.9", false)],
            ),
            ("<1.0.0", &[("0.9.9", true), ("1.0.0", false)]),
            (">=1.0.0", &[("1.0.0", true), ("0.1.0", false)]),
            ("<=1.0.0", &[("1.0.0", true), ("1.0.1", false)]),
            ("1.0.0", &[("1.0.0", true), ("1.0.1", false)]),
            ("=1.0.0", &[("1.0.0", true)]),
            ("==1.0.0", &[("1.0.0", true)]),
            ("!1.0.0", &[("1.0.0", false), ("1.0.1", true)]),
            ("!=1.0.0", &[("1.0.0", false), ("1.0.1", true)]),
            (
                ">1.0.0 <2.0.0",
                &[("1.1.1", true), ("2.0.0", false), ("1.0.0", false)],
            ),
            (
                "<2.0.0 || >=3.0.0",
                &[("1.9.9", true), ("2.0.0", false), ("3.0.0", true)],
            ),
            (
                ">1.0.0 <3.0.0 !2.0.3-beta.2",
                &[
                    ("2.0.3-beta.2", false),
                    ("2.0.3-beta.3", true),
                    ("2.0.3", true),
                ],
            ),
            (">= 1.0.0 < 2.0.0", &[("1.5.0", true), ("2.0.0", false)]),
            (
                "1.2.x",
                &[("1.2.0", true), ("1.2.9", true), ("1.3.0", false)],
            ),
            (">=1.2.x", &[("1.2.0", true), ("1.1.9", false)]),
            ("<=1.2.x", &[("1.2.9", true), ("1.3.0", false)]),
            (">1.x", &[("2.0.0", true), ("1.9.9", false)]),
            ("1.x", &[("1.0.0", true), ("2.0.0", false)]),
        ];
        for (range, versions) in cases {
            let parsed = Range::parse(range).unwrap_or_else(|e| panic!("{range}: {e}"));
            for (version, expected) in *versions {
                let v = Version::parse(version).unwrap();
                assert_eq!(parsed.matches(&v), *expected, "{range} on {version}");
            }
        }
        for bad in [">=1.0", ">=v1.0.0", "|| 1.0.0", "1.0.0 ||", "~1.0.0"] {
            assert!(Range::parse(bad).is_err(), "{bad}");
        }
    }

    /// blang's `tolerantFormatTests` (semver_test.go) and dregsy's
    /// TEST_CASES.md §E table of ParseTolerant.
    #[test]
    fn tags_parse_as_parse_tolerant_reads_them() {
        let v = |t: &str| tolerant(t).map(|v| v.to_string());
        assert_eq!(v("1.31").as_deref(), Some("1.31.0"));
        assert_eq!(v("1").as_deref(), Some("1.0.0"));
        assert_eq!(v("v1.2.3").as_deref(), Some("1.2.3"));
        assert_eq!(v("01.02.03").as_deref(), Some("1.2.3"));
        assert_eq!(v(" 1.2.3 ").as_deref(), Some("1.2.3"));
        assert_eq!(v("1.31.1-musl").as_deref(), Some("1.31.1-musl"));
        assert_eq!(v("1.0.0+build.1").as_deref(), Some("1.0.0+build.1"));
        assert_eq!(v("1.31-musl"), None);
        assert_eq!(v("1.2.3_x"), None);
        assert_eq!(v("latest"), None);
    }

    /// dregsy's e2e tag-set expectations (cmd/dregsy/main_test.go, the
    /// ranges of test/fixtures/e2e/tagsets/*-range.yaml and *-limit.yaml)
    /// and its derived cases E5–E10 (TEST_CASES.md).
    #[test]
    fn dregsys_ranges_keep_the_prereleases_above_their_floor() {
        let busybox = [
            "1.26.1",
            "1.26.1-glibc",
            "1.26.2",
            "1.31",
            "1.31.0",
            "1.31.0-glibc",
            "1.31.0-musl",
            "1.31.1",
            "1.31.1-glibc",
            "1.31.1-musl",
            "1.31.1-uclibc",
            "1.32.0",
            "2.0",
            "2.0.0-buster",
            "2.1.4",
            "2.1.4-buster",
            "2.1.5-slim",
            "3.2",
            "v2.0.0",
            "latest",
        ];
        assert_eq!(
            matching(">=1.31.0 <1.31.9", &busybox),
            [
                "1.31",
                "1.31.0",
                "1.31.1",
                "1.31.1-glibc",
                "1.31.1-musl",
                "1.31.1-uclibc"
            ]
        );
        assert_eq!(
            matching(">=2.1.4", &busybox),
            ["2.1.4", "2.1.5-slim", "3.2"]
        );
        assert_eq!(matching(">= 2.0.0 < 2.1.0", &busybox), ["2.0", "v2.0.0"]);
        assert_eq!(
            matching("<1.26.2 || >=3.0.0", &busybox),
            ["1.26.1", "1.26.1-glibc", "3.2"]
        );
        assert_eq!(
            matching("!1.26.1 <1.31.0", &busybox),
            ["1.26.1-glibc", "1.26.2", "1.31.0-glibc", "1.31.0-musl"]
        );
    }
}
