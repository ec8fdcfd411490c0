//! The registry options file (`--registry-config FILE`, or the default one
//! in the user's config directory): found, read through the one bounded
//! local reader, parsed as YAML (of which JSON is a part), and every value
//! checked against the range it can sensibly take, so that a typo such as
//! `retry_deadline_secs: 1e30` is an error naming the file, line and field
//! instead of a panic or a run that waits forever.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{Diagnostic, Location};
use crate::local_file::ReadError;
use crate::manifest::yaml::{self, Node, Value};
use crate::registry::OpenOptions;
use crate::registry::{RegistryOptions, RemoteOptions};

/// Where the options reference lives, for every message about the file.
const REFERENCE: &str = "README, \"Registry options\"";

/// Why the registry options could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the registry options: {source}")]
    Read {
        /// The file as named.
        path: String,
        /// What went wrong.
        source: ReadError,
    },
    /// The file is not UTF-8 text.
    #[error("{path}: the registry options are not UTF-8")]
    NotUtf8 {
        /// The file as named.
        path: String,
    },
    /// The file is read, and wrong: every problem found, each at its line.
    #[error("{}", shown(.0))]
    Invalid(Vec<Diagnostic>),
}

fn shown(diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Where registry options are looked up when no flag names a file:
/// `$XDG_CONFIG_HOME/promoter/registries.yaml`, else
/// `~/.config/promoter/registries.yaml`, when it exists.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    let path = base.join("promoter").join("registries.yaml");
    path.is_file().then_some(path)
}

/// How to open the registries of a run: the options in `config` (or the
/// default file, or none) and the credentials file `auth_file`.
pub fn open_options(
    config: Option<&Path>,
    auth_file: Option<&Path>,
) -> Result<OpenOptions, ConfigError> {
    let path = config.map(Path::to_path_buf).or_else(default_path);
    let remote = match &path {
        Some(path) => load(path)?,
        None => RemoteOptions::default(),
    };
    Ok(OpenOptions {
        remote,
        auth_file: auth_file.map(Path::to_path_buf),
        credentials: Vec::new(),
    })
}

/// Read and check the options file at `path`.
pub fn load(path: &Path) -> Result<RemoteOptions, ConfigError> {
    let shown = path.display().to_string();
    let bytes = crate::local_file::read_capped(path, crate::limits::OPTIONS_FILE_BYTES).map_err(
        |source| ConfigError::Read {
            path: shown.clone(),
            source,
        },
    )?;
    let text = String::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8 {
        path: shown.clone(),
    })?;
    parse(Arc::from(path), &text)
}

/// The options in `text`, read as the file `file`.
pub fn parse(file: Arc<Path>, text: &str) -> Result<RemoteOptions, ConfigError> {
    let at = |node: &Node<'_>| Location {
        file: file.clone(),
        line: node.pos.line,
        col: node.pos.col,
    };
    let parsed = yaml::parse(text);
    if !parsed.errors.is_empty() {
        let diagnostics = parsed
            .errors
            .iter()
            .map(|e| {
                let location = Location {
                    file: file.clone(),
                    line: e.pos.line,
                    col: e.pos.col,
                };
                Diagnostic::error(location, e.message.clone()).with_help_opt(e.help.clone())
            })
            .collect();
        return Err(ConfigError::Invalid(diagnostics));
    }
    let Some(root) = parsed.root.filter(|r| !r.is_null()) else {
        return Ok(RemoteOptions::default());
    };
    let mut problems = Vec::new();
    let mut options = RemoteOptions::default();
    let Value::Map(entries) = &root.value else {
        problems.push(
            Diagnostic::error(
                at(&root),
                format!(
                    "the registry options are {}, not a mapping",
                    root.describe()
                ),
            )
            .with_help(format!("write `defaults:` and `registries:` ({REFERENCE})")),
        );
        return Err(ConfigError::Invalid(problems));
    };
    for (key, value) in entries {
        match key.as_scalar().map(|s| s.text.as_ref()) {
            Some("defaults") => {
                if let Some(o) = registry_options(value, "defaults", &at, &mut problems) {
                    options.defaults = o;
                }
            }
            Some("registries") => {
                options.registries = per_registry(value, &at, &mut problems);
            }
            _ => problems.push(
                Diagnostic::error(at(key), format!("unknown key {}", key.describe())).with_help(
                    format!(
                        "the registry options have `defaults:` and `registries:` ({REFERENCE})"
                    ),
                ),
            ),
        }
    }
    if problems.is_empty() {
        Ok(options)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// `registries:`: options per `host[:port]`.
fn per_registry(
    node: &Node<'_>,
    at: &dyn Fn(&Node<'_>) -> Location,
    problems: &mut Vec<Diagnostic>,
) -> std::collections::BTreeMap<String, RegistryOptions> {
    let mut out = std::collections::BTreeMap::new();
    match &node.value {
        Value::Map(entries) => {
            for (host, value) in entries {
                let name = host
                    .as_scalar()
                    .map(|s| s.text.to_string())
                    .unwrap_or_default();
                if let Some(o) = registry_options(value, &name, at, problems) {
                    out.insert(name, o);
                }
            }
        }
        _ if node.is_null() => {}
        _ => problems.push(
            Diagnostic::error(
                at(node),
                format!("`registries` is {}, not a mapping", node.describe()),
            )
            .with_help("key it by host[:port]: `registries: {\"ghcr.io\": {max_in_flight: 8}}`"),
        ),
    }
    out
}

/// One registry's options (or the defaults), `what` naming them in messages.
fn registry_options(
    node: &Node<'_>,
    what: &str,
    at: &dyn Fn(&Node<'_>) -> Location,
    problems: &mut Vec<Diagnostic>,
) -> Option<RegistryOptions> {
    if node.is_null() {
        return Some(RegistryOptions::default());
    }
    let Value::Map(fields) = &node.value else {
        problems.push(Diagnostic::error(
            at(node),
            format!(
                "the options of {what} are {}, not a mapping",
                node.describe()
            ),
        ));
        return None;
    };
    let before = problems.len();
    for (key, value) in fields {
        let name = key.as_scalar().map(|s| s.text.as_ref()).unwrap_or_default();
        if let Some(problem) = out_of_range(name, value) {
            problems.push(
                Diagnostic::error(at(value), format!("{what}: `{name}` {problem}"))
                    .with_help(format!("see {REFERENCE} for what each field takes")),
            );
        }
    }
    if problems.len() > before {
        return None;
    }
    match serde_json::from_value::<RegistryOptions>(yaml::to_json(node)) {
        Ok(options) => Some(options),
        Err(e) => {
            let position = misplaced_key(&e.to_string(), fields).unwrap_or(node);
            problems.push(
                Diagnostic::error(at(position), format!("{what}: {e}"))
                    .with_help(format!("see {REFERENCE} for the fields and their types")),
            );
            None
        }
    }
}

/// The key a serde message is about (`unknown field `x``), when it names one.
fn misplaced_key<'n, 'a>(
    message: &str,
    fields: &'n [(Node<'a>, Node<'a>)],
) -> Option<&'n Node<'a>> {
    let name = message.split('`').nth(1)?;
    fields
        .iter()
        .find(|(k, _)| k.as_scalar().is_some_and(|s| s.text == name))
        .map(|(k, _)| k)
}

/// The range each numeric field may take: (field, least, most, unit).
/// Beyond them a value is a typo (or an attack on the reader), never a
/// setting: a week of retrying, a kibibyte chunk, a million requests at once.
const RANGES: [(&str, f64, f64, &str); 14] = [
    ("max_in_flight", 1.0, 1024.0, "requests"),
    ("requests_per_second", 0.001, 1e6, "requests per second"),
    ("requests_per_minute", 0.06, 6e7, "requests per minute"),
    (
        "write_requests_per_second",
        0.001,
        1e6,
        "requests per second",
    ),
    (
        "write_requests_per_minute",
        0.06,
        6e7,
        "requests per minute",
    ),
    ("chunk_size", 65536.0, 4294967296.0, "bytes"),
    ("retry_deadline_secs", 0.0, 604800.0, "seconds"),
    ("max_attempts", 1.0, 100.0, "attempts"),
    ("connect_timeout_secs", 0.001, 86400.0, "seconds"),
    ("read_timeout_secs", 0.001, 604800.0, "seconds"),
    ("page_size", 1.0, 100000.0, "entries"),
    ("request_timeout_secs", 0.001, 604800.0, "seconds"),
    (
        "min_bytes_per_second",
        0.0,
        1099511627776.0,
        "bytes per second",
    ),
    ("pace_window_secs", 0.1, 86400.0, "seconds"),
];

/// What is wrong with `value` for the numeric field `name`, if anything.
fn out_of_range(name: &str, value: &Node<'_>) -> Option<String> {
    let (_, least, most, unit) = RANGES.iter().find(|(field, ..)| *field == name)?;
    let scalar = value.as_scalar()?;
    if scalar.is_null() {
        return None;
    }
    let number: f64 = match scalar.text.parse() {
        Ok(n) => n,
        Err(_) => return Some(format!("is {}, not a number", value.describe())),
    };
    if !number.is_finite() || number < *least || number > *most {
        return Some(format!(
            "is {}, outside {least}..={most} {unit}",
            scalar.text
        ));
    }
    let whole = !matches!(
        name,
        "requests_per_second"
            | "requests_per_minute"
            | "write_requests_per_second"
            | "write_requests_per_minute"
            | "retry_deadline_secs"
            | "connect_timeout_secs"
            | "read_timeout_secs"
            | "request_timeout_secs"
            | "pace_window_secs"
    );
    (whole && number.fract() != 0.0).then(|| format!("is {}, not a whole number", scalar.text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(text: &str) -> Result<RemoteOptions, ConfigError> {
        parse(Arc::from(Path::new("registries.yaml")), text)
    }

    #[test]
    fn defaults_and_per_registry_options_are_read_from_yaml_and_json() {
        let yaml =
            read("defaults:\n  max_in_flight: 8\nregistries:\n  ghcr.io:\n    plain_http: false\n")
                .unwrap();
        assert_eq!(yaml.defaults.max_in_flight, Some(8));
        assert_eq!(yaml.registries["ghcr.io"].plain_http, Some(false));
        let json = read(r#"{"defaults": {"retry_deadline_secs": 1.5}}"#).unwrap();
        assert_eq!(json.defaults.retry_deadline_secs, Some(1.5));
        assert_eq!(read("").unwrap(), RemoteOptions::default());
    }

    #[test]
    fn a_value_out_of_its_range_names_the_file_line_and_field() {
        let err = read("defaults:\n  retry_deadline_secs: 1e30\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "registries.yaml:2:24: error: defaults: `retry_deadline_secs` is 1e30, outside"
            ),
            "{err}"
        );
        let err = read(
            "registries:\n  localhost:5000:\n    request_timeout_secs: 18446744073709551615\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("registries.yaml:3:27"), "{err}");
        assert!(
            err.contains("localhost:5000: `request_timeout_secs`"),
            "{err}"
        );
        let err = read("defaults:\n  max_in_flight: 2.5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a whole number"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once_and_unknown_keys_at_their_line() {
        let err = read("defaults:\n  max_in_flight: 0\n  page_size: -1\nregistries:\n  a.io:\n    plain_htp: true\nextra: 1\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err.lines().filter(|l| l.contains(": error: ")).count(),
            4,
            "{err}"
        );
        assert!(
            err.contains("registries.yaml:6:5: error: a.io: unknown field `plain_htp`"),
            "{err}"
        );
        assert!(
            err.contains("registries.yaml:7:1: error: unknown key"),
            "{err}"
        );
    }

    proptest! {
        /// Whatever number is written for whichever field, reading the file
        /// and resolving the options never panics: a value is in range and
        /// used, or an error says which.
        #[test]
        fn random_numbers_never_panic(field in 0..RANGES.len(), value in prop_oneof![
            any::<f64>().prop_map(|f| format!("{f:e}")),
            any::<u64>().prop_map(|u| u.to_string()),
            any::<i64>().prop_map(|i| i.to_string()),
            Just("-0".to_string()), Just(".inf".to_string()), Just("NaN".to_string()),
        ]) {
            let name = RANGES[field].0;
            if let Ok(options) = read(&format!("defaults:\n  {name}: {value}\n")) {
                let _ = options.for_host("registry.example");
            }
        }
    }
}
