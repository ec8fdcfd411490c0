//! A Sinker image manifest as Sinker writes it (`Manifest.Write`: Go's
//! gopkg.in/yaml.v2 2.4.0 `Marshal` of its structs): keys in field order,
//! empty fields left out (`target: {}` when the manifest's is empty), list
//! items not indented under their key, and a string quoted exactly when
//! yaml.v2 would (`tag: "234"`, since `234` would read back as a number).

use super::model::{Auth, SinkerFile, Source, Target};

/// `file` as Sinker writes it.
pub fn sinker_text(file: &SinkerFile) -> String {
    let mut out = String::new();
    if is_zero_target(&file.target) {
        out.push_str("target: {}\n");
    } else {
        out.push_str("target:\n");
        target(&mut out, &file.target, 2);
    }
    if !file.sources.is_empty() {
        out.push_str("sources:\n");
        for s in &file.sources {
            source(&mut out, s);
        }
    }
    out
}

fn is_zero_target(t: &Target) -> bool {
    t.host.is_empty() && t.repository.is_empty() && is_zero_auth(&t.auth)
}

fn is_zero_auth(a: &Auth) -> bool {
    a.username.is_empty() && a.password.is_empty()
}

fn line(out: &mut String, indent: usize, key: &str, value: &str) {
    out.push_str(&format!("{}{key}: {}\n", " ".repeat(indent), scalar(value)));
}

fn optional(out: &mut String, indent: usize, key: &str, value: &str) {
    if !value.is_empty() {
        line(out, indent, key, value);
    }
}

fn target(out: &mut String, t: &Target, indent: usize) {
    optional(out, indent, "host", &t.host);
    optional(out, indent, "repository", &t.repository);
    auth(out, &t.auth, indent);
}

fn auth(out: &mut String, a: &Auth, indent: usize) {
    if is_zero_auth(a) {
        return;
    }
    out.push_str(&format!("{}auth:\n", " ".repeat(indent)));
    optional(out, indent + 2, "username", &a.username);
    optional(out, indent + 2, "password", &a.password);
}

fn source(out: &mut String, s: &Source) {
    out.push_str(&format!("- repository: {}\n", scalar(&s.repository)));
    optional(out, 2, "host", &s.host);
    if !is_zero_target(&s.target) {
        out.push_str("  target:\n");
        target(out, &s.target, 4);
    }
    optional(out, 2, "tag", &s.tag);
    optional(out, 2, "digest", &s.digest);
    auth(out, &s.auth, 2);
}

/// A string as yaml.v2 writes it: double-quoted when it would read back as
/// something else than a string, single-quoted when libyaml cannot write
/// it plain, else plain.
fn scalar(text: &str) -> String {
    if resolves_to_other(text) {
        return serde_json::to_string(text).expect("a string serialises");
    }
    if plain_ok(text) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "''"))
    }
}

/// Whether yaml.v2 reads `text`, plain, as a null, bool, number or time.
fn resolves_to_other(text: &str) -> bool {
    const WORDS: [&str; 33] = [
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        "<<", ".inf", ".Inf", ".INF", ".nan", ".NaN",
    ];
    if WORDS.contains(&text)
        || matches!(
            text,
            "-.inf" | "-.Inf" | "-.INF" | "+.inf" | "+.Inf" | "+.INF" | ".NAN"
        )
    {
        return true;
    }
    let numbers = regex::Regex::new(concat!(
        r"^[-+]?(0b[01_]+|0o?[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)$",
        r"|^[-+]?(\.[0-9_]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$",
        r"|^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$",
        r"|^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}",
    ))
    .expect("a valid expression");
    numbers.is_match(text)
}

/// Whether libyaml's emitter writes `text` as a plain block scalar.
fn plain_ok(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let (Some(&first), Some(&last)) = (chars.first(), chars.last()) else {
        return false;
    };
    if first == ' ' || last == ' ' || text.contains('\n') {
        return false;
    }
    let blank_after = |i: usize| chars.get(i + 1).is_none_or(|c| *c == ' ');
    if "#,[]{}&*!|>'\"%@`".contains(first) || (matches!(first, '?' | ':' | '-') && blank_after(0)) {
        return false;
    }
    for (i, &c) in chars.iter().enumerate() {
        if c == ':' && blank_after(i) || c == '#' && i > 0 && chars[i - 1] == ' ' {
            return false;
        }
        if c.is_control() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::model::SinkerFile;
    use super::*;

    #[test]
    fn scalars_are_quoted_as_yaml_v2_quotes_them() {
        for (text, written) in [
            ("234", "\"234\""),
            ("1.25", "\"1.25\""),
            ("1.0", "\"1.0\""),
            ("true", "\"true\""),
            ("", "\"\""),
            ("1.2.3", "1.2.3"),
            ("v1.0.0", "v1.0.0"),
            ("sha256:abc123", "sha256:abc123"),
            ("quay.io", "quay.io"),
            ("latest", "latest"),
            ("1:20", "\"1:20\""),
            ("- x", "'- x'"),
        ] {
            assert_eq!(scalar(text), written, "{text:?}");
        }
    }

    #[test]
    fn an_empty_target_is_a_flow_mapping_and_empty_sources_are_left_out() {
        assert_eq!(sinker_text(&SinkerFile::default()), "target: {}\n");
    }
}
