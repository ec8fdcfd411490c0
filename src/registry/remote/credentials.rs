//! Where registry credentials come from: docker `config.json`, containers
//! `auth.json`, an explicit auth file, and `docker-credential-*` helpers.
//!
//! Why not the `docker_credential` crate: it finds helpers only on `PATH`
//! (tests need a stub helper without touching the process environment), its
//! errors print the helper's stdout and stderr (which may hold a secret), it
//! treats a helper's "credentials not found" as a failure rather than "no
//! credentials", and it reads one file where we consult several in order.
//! The format and the helper protocol are small, so they live here.
//!
//! Secrets are held in [`Secret`], whose `Debug` and `Display` print
//! `<redacted>`; the raw value is reachable only through [`Secret::expose`].

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::registry::RegistryError;

/// A secret string (password, token). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wrap `value` so that it is never printed from here on.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Arc::from(value.into()))
    }
    /// The raw value, for building an `Authorization` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Credentials for one registry host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or a personal access token used as one).
    Basic {
        /// The user name; not secret, so it may appear in messages.
        username: String,
        /// The password or token.
        password: Secret,
    },
    /// A refresh token for the OAuth2 `refresh_token` grant (docker's
    /// `identitytoken`, or a helper answering with user `<token>`).
    IdentityToken(Secret),
    /// A token sent as it is, `Authorization: Bearer <token>`, without a
    /// token exchange (docker's `registrytoken`; image-syncer's
    /// `--access-token`, a cloud OAuth access token).
    RegistryToken(Secret),
}

impl Credential {
    /// A Google service-account key file as a registry credential:
    /// user `_json_key`, the file's text as the password (what
    /// image-syncer's `--target-repo-auth-key` and `docker login` with a
    /// JSON key send). Read bounded; `flag` names where the path came from.
    pub fn json_key_file(path: &Path, flag: &str) -> Result<Credential, RegistryError> {
        let bytes =
            crate::local_file::read_capped(path, crate::limits::KEY_FILE_BYTES).map_err(|e| {
                RegistryError::Credentials(format!(
                    "{flag} {}: cannot read the key file: {e}",
                    path.display()
                ))
            })?;
        let password = String::from_utf8(bytes).map_err(|_| {
            RegistryError::Credentials(format!(
                "{flag} {}: the key file is not UTF-8 text",
                path.display()
            ))
        })?;
        Ok(Credential::Basic {
            username: "_json_key".into(),
            password: Secret::new(password),
        })
    }
}

/// One parsed auth file (docker `config.json` or containers `auth.json`:
/// the same shape for what we read).
#[derive(Debug, Default, Deserialize)]
struct AuthFileJson {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
}

#[derive(Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, alias = "identityToken")]
    identitytoken: Option<String>,
}

impl fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthEntry")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct AuthFile {
    path: PathBuf,
    json: AuthFileJson,
}

/// Credentials from auth files and helpers, looked up per registry host.
///
/// Files are consulted in order and the first one that knows the host wins.
/// Within a file: a `credHelpers` entry for the host, then an `auths` entry,
/// then the `credsStore` helper.
#[derive(Debug, Default)]
pub struct CredentialStore {
    files: Vec<AuthFile>,
    /// Directories searched for `docker-credential-*` before `PATH`.
    helper_dirs: Vec<PathBuf>,
    helper_timeout: Option<Duration>,
    /// Host -> where its credentials came from, for messages.
    answered: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Host -> credentials given on the command line, before any file.
    given: HashMap<String, (Credential, String)>,
}

impl CredentialStore {
    /// No credentials at all: every registry is accessed anonymously.
    pub fn anonymous() -> CredentialStore {
        CredentialStore::default()
    }

    /// The usual places, in order: `explicit` (an `--auth-file`, which must
    /// exist), `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
    /// `$XDG_CONFIG_HOME/containers/auth.json` (or `~/.config/…`),
    /// `$DOCKER_CONFIG/config.json` or else `~/.docker/config.json`. Missing
    /// default files are skipped; unreadable or malformed ones are errors.
    pub fn discover(explicit: Option<&Path>) -> Result<CredentialStore, RegistryError> {
        let mut store = CredentialStore::default();
        if let Some(path) = explicit {
            store.add_file(path)?;
        }
        let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let mut defaults = Vec::new();
        if let Some(path) = env("REGISTRY_AUTH_FILE") {
            defaults.push(PathBuf::from(path));
        }
        if let Some(dir) = env("XDG_RUNTIME_DIR") {
            defaults.push(PathBuf::from(dir).join("containers/auth.json"));
        }
        // Where containers tools keep it when it should survive a reboot.
        if let Some(dir) = env("XDG_CONFIG_HOME") {
            defaults.push(PathBuf::from(dir).join("containers/auth.json"));
        } else if let Some(home) = env("HOME") {
            defaults.push(PathBuf::from(home).join(".config/containers/auth.json"));
        }
        if let Some(dir) = env("DOCKER_CONFIG") {
            defaults.push(PathBuf::from(dir).join("config.json"));
        } else if let Some(home) = env("HOME") {
            defaults.push(PathBuf::from(home).join(".docker/config.json"));
        }
        for path in defaults {
            if path.is_file() {
                store.add_file(&path)?;
            }
        }
        Ok(store)
    }

    /// Exactly these files, in order (each must exist).
    pub fn from_files<P: AsRef<Path>>(
        paths: impl IntoIterator<Item = P>,
    ) -> Result<CredentialStore, RegistryError> {
        let mut store = CredentialStore::default();
        for path in paths {
            store.add_file(path.as_ref())?;
        }
        Ok(store)
    }

    /// Look for `docker-credential-*` programs in `dirs` before `PATH`.
    pub fn with_helper_dirs(mut self, dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        self.helper_dirs.extend(dirs);
        self
    }

    /// `credential` for `host` (as [`crate::reference::RegistryName`]
    /// normalises it), before every file; `source` says where it came
    /// from in messages (a flag's name, never the value).
    pub fn with_credential(mut self, host: &str, credential: Credential, source: &str) -> Self {
        self.given
            .insert(host.to_string(), (credential, source.to_string()));
        self
    }

    /// How long a credential helper may take (default 60 s).
    pub fn with_helper_timeout(mut self, timeout: Duration) -> Self {
        self.helper_timeout = Some(timeout);
        self
    }

    fn add_file(&mut self, path: &Path) -> Result<(), RegistryError> {
        /// Auth files are small JSON documents (a few KiB).
        const AUTH_FILE_LIMIT: u64 = 4 << 20;
        let text = crate::local_file::read_capped(path, AUTH_FILE_LIMIT).map_err(|e| match e {
            crate::local_file::ReadError::Io(source) => RegistryError::Io {
                path: path.display().to_string(),
                source,
            },
            other => RegistryError::Credentials(format!("{}: {other}", path.display())),
        })?;
        // serde_json's messages may quote the offending value, which could be
        // a secret: report the position only.
        let json: AuthFileJson = serde_json::from_slice(&text).map_err(|e| {
            RegistryError::Credentials(format!(
                "{}: not a valid auth file (JSON error at line {}, column {})",
                path.display(),
                e.line(),
                e.column()
            ))
        })?;
        self.files.push(AuthFile {
            path: path.to_path_buf(),
            json,
        });
        Ok(())
    }

    /// Credentials for `host` (`host[:port]`, normalised as in
    /// [`crate::reference::RegistryName`], so Docker Hub is `docker.io`),
    /// or `None` to go anonymous.
    pub async fn lookup(&self, host: &str) -> Result<Option<Credential>, RegistryError> {
        let keys = host_keys(host);
        if let Some((credential, source)) = self.given.get(host) {
            tracing::debug!(registry = host, source = %source, "credentials found");
            self.answered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(host.to_string(), source.clone());
            return Ok(Some(credential.clone()));
        }
        // Which source answered, for -vv (never what it answered).
        // CI's way first: PROMOTER_AUTH_<HOST>=user:password.
        let variable = env_variable(host);
        if let Some(value) = std::env::var_os(&variable) {
            let value = value.to_string_lossy().into_owned();
            let Some((username, password)) = value.split_once(':') else {
                return Err(RegistryError::Credentials(format!(
                    "{variable} is not user:password (its value is not shown)"
                )));
            };
            tracing::debug!(registry = host, source = %variable, "credentials found");
            self.answered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    host.to_string(),
                    format!("the environment variable {variable}"),
                );
            return Ok(Some(Credential::Basic {
                username: username.to_string(),
                password: Secret::new(password.to_string()),
            }));
        }
        let found = |source: String| {
            tracing::debug!(registry = host, source = %source, "credentials found");
            self.answered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(host.to_string(), source);
        };
        for file in &self.files {
            let json = &file.json;
            if let Some(helper) = keys.iter().find_map(|k| json.cred_helpers.get(k)) {
                if !helper.is_empty() {
                    if let Some(c) = self.run_helper(helper, &keys[0]).await? {
                        found(format!(
                            "credHelpers docker-credential-{helper} ({})",
                            file.path.display()
                        ));
                        return Ok(Some(c));
                    }
                }
            }
            if let Some(entry) = find_entry(&json.auths, &keys) {
                if let Some(c) = entry_credential(entry, &file.path, host)? {
                    found(format!("auths in {}", file.path.display()));
                    return Ok(Some(c));
                }
            }
            if let Some(store) = json.creds_store.as_deref().filter(|s| !s.is_empty()) {
                if let Some(c) = self.run_helper(store, &keys[0]).await? {
                    found(format!(
                        "credsStore docker-credential-{store} ({})",
                        file.path.display()
                    ));
                    return Ok(Some(c));
                }
            }
        }
        tracing::debug!(
            registry = host,
            files = self.files.len(),
            "no credentials for this registry: anonymous"
        );
        Ok(None)
    }

    /// Where the credentials found for `host` came from, if any were.
    pub fn source_of(&self, host: &str) -> Option<String> {
        self.answered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
            .cloned()
    }

    /// `docker-credential-<name> get`, server URL on stdin, JSON on stdout.
    async fn run_helper(
        &self,
        name: &str,
        server: &str,
    ) -> Result<Option<Credential>, RegistryError> {
        // The name comes from a config file: keep it a plain program name.
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            || name.starts_with('.')
        {
            return Err(RegistryError::Credentials(format!(
                "credential helper name {name:?} is not a plain program name"
            )));
        }
        let program = format!("docker-credential-{name}");
        let path = self
            .helper_dirs
            .iter()
            .map(|d| d.join(&program))
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from(&program));
        let fail = |why: String| {
            RegistryError::Credentials(format!("credential helper {program} for {server}: {why}"))
        };
        let mut child = tokio::process::Command::new(&path)
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot start: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(server.as_bytes())
                .await
                .map_err(|e| fail(format!("cannot write to it: {e}")))?;
            // Dropping stdin closes it: helpers read to EOF.
        }
        let timeout = self.helper_timeout.unwrap_or(Duration::from_secs(60));
        let output = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| fail(format!("no answer within {}s", timeout.as_secs())))?
            .map_err(|e| fail(format!("failed: {e}")))?;
        if !output.status.success() {
            // The helper protocol's way of saying "nothing stored for this
            // server" is a failure whose output says so; that means anonymous.
            let said = String::from_utf8_lossy(&output.stdout).to_ascii_lowercase()
                + &String::from_utf8_lossy(&output.stderr).to_ascii_lowercase();
            if said.contains("credentials not found") || said.contains("not found in") {
                return Ok(None);
            }
            // Never echo the helper's output: it may hold a secret.
            return Err(fail(format!("exited with {}", output.status)));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Answer {
            #[serde(default)]
            username: String,
            #[serde(default)]
            secret: String,
        }
        let answer: Answer = serde_json::from_slice(&output.stdout)
            .map_err(|_| fail("answered with something that is not its JSON".to_string()))?;
        if answer.secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(if answer.username == "<token>" {
            Credential::IdentityToken(Secret::new(answer.secret))
        } else {
            Credential::Basic {
                username: answer.username,
                password: Secret::new(answer.secret),
            }
        }))
    }
}

/// The keys a host may be stored under, most specific first. The first is
/// the one helpers are asked for (docker asks for Docker Hub by its v1 URL).
/// `PROMOTER_AUTH_GHCR_IO` for `ghcr.io`, `PROMOTER_AUTH_LOCALHOST_5000`
/// for `localhost:5000`: the host upper-cased, every other character `_`.
pub fn env_variable(host: &str) -> String {
    let name: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("PROMOTER_AUTH_{name}")
}

fn host_keys(host: &str) -> Vec<String> {
    if matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    ) {
        return vec![
            "https://index.docker.io/v1/".to_string(),
            "index.docker.io".to_string(),
            "docker.io".to_string(),
            "registry-1.docker.io".to_string(),
        ];
    }
    vec![host.to_string()]
}

/// The `auths` entry for a host: an exact key first, then keys written as
/// URLs (`https://host/v1/`) or with a repository path (`host/org/repo`, as
/// containers auth.json allows), the shortest such key first.
fn find_entry<'a>(auths: &'a HashMap<String, AuthEntry>, keys: &[String]) -> Option<&'a AuthEntry> {
    for key in keys {
        if let Some(e) = auths.get(key) {
            return Some(e);
        }
    }
    let mut loose: Vec<(&String, &AuthEntry)> = auths
        .iter()
        .filter(|(k, _)| {
            let bare = k
                .strip_prefix("https://")
                .or_else(|| k.strip_prefix("http://"))
                .unwrap_or(k);
            let host = bare.split('/').next().unwrap_or(bare);
            keys.iter().any(|key| key == host)
        })
        .collect();
    loose.sort_by_key(|(k, _)| (k.len(), (*k).clone()));
    loose.first().map(|(_, e)| *e)
}

fn entry_credential(
    entry: &AuthEntry,
    path: &Path,
    host: &str,
) -> Result<Option<Credential>, RegistryError> {
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken(Secret::new(token))));
    }
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let bad = || {
            RegistryError::Credentials(format!(
                "{}: the \"auth\" entry for {host} is not base64 of user:password",
                path.display()
            ))
        };
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = engine.decode(auth.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, pass) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credential::Basic {
            username: user.to_string(),
            password: Secret::new(pass),
        }));
    }
    if let (Some(user), Some(pass)) = (&entry.username, &entry.password) {
        return Ok(Some(Credential::Basic {
            username: user.clone(),
            password: Secret::new(pass.clone()),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_read_bounded_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.json");
        std::fs::write(&key, "{\"private_key\": \"kf-secret\"}").unwrap();
        let credential = Credential::json_key_file(&key, "-t").unwrap();
        assert!(
            matches!(&credential, Credential::Basic { username, .. } if username == "_json_key")
        );
        assert!(!format!("{credential:?}").contains("kf-secret"));
        // Too large, not UTF-8, or a FIFO: refused at once, naming the flag.
        let huge = dir.path().join("huge.json");
        std::fs::write(
            &huge,
            vec![b'a'; crate::limits::KEY_FILE_BYTES as usize + 1],
        )
        .unwrap();
        let binary = dir.path().join("binary.json");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for bad in [&huge, &binary, &fifo] {
            let err = Credential::json_key_file(bad, "-t")
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("-t {}", bad.display())), "{err}");
        }
    }

    fn store(json: &str) -> (tempfile::TempDir, CredentialStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, json).unwrap();
        let store = CredentialStore::from_files([&path]).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn auth_entries_decode_and_match_url_keys() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let (_d, s) = store(&format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{auth}"}},
                         "https://quay.io/v1/": {{"username": "bob", "password": "pw"}},
                         "ghcr.io/org/repo": {{"identitytoken": "idt"}},
                         "empty.example": {{}}}}}}"#
        ));
        let hub = s.lookup("docker.io").await.unwrap().unwrap();
        assert_eq!(
            hub,
            Credential::Basic {
                username: "alice".into(),
                password: Secret::new("s3cret")
            }
        );
        assert!(!format!("{hub:?}").contains("s3cret"));
        assert!(
            matches!(s.lookup("quay.io").await.unwrap(), Some(Credential::Basic { username, .. }) if username == "bob")
        );
        assert!(matches!(
            s.lookup("ghcr.io").await.unwrap(),
            Some(Credential::IdentityToken(_))
        ));
        assert_eq!(s.lookup("empty.example").await.unwrap(), None);
        assert_eq!(s.lookup("other.example").await.unwrap(), None);
    }

    #[test]
    fn malformed_files_are_reported_without_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"auths": {"h": {"auth": 12345678}}}"#).unwrap();
        let err = CredentialStore::from_files([&path])
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
        assert!(!err.contains("12345678"), "{err}");
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
    }
}
