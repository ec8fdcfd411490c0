//! Registry authentication: `WWW-Authenticate` challenges, scopes, and bearer
//! tokens cached per scope set.
//!
//! The flow is docker's: a `/v2/` ping tells which scheme the registry wants
//! (none, Basic, or Bearer with a token realm). For Bearer, each request names
//! the scopes it needs; a token is fetched for that scope set from the realm
//! (anonymously, with Basic credentials, or with an identity token through the
//! OAuth2 `refresh_token` grant) and cached until shortly before it expires.
//! A cross-repository mount asks for one token covering
//! `repository:src:pull` and `repository:dst:pull,push`: a token for the
//! destination alone makes the registry answer the mount with an upload
//! session instead.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde::Deserialize;
use tokio::sync::OnceCell;
use url::Url;

use super::body::read_capped;
use super::credentials::{Credential, CredentialStore, Secret};
use super::retry::reqwest_error;
use crate::registry::retry::{with_retries, Failed, RetryClock};
use crate::registry::{RegistryError, SafeUrl};

// ---------------------------------------------------------------- challenges

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic`: send the username and password with every request.
    Basic {
        /// The `realm` parameter, if given; informational only.
        realm: Option<String>,
    },
    /// `Bearer`: fetch a token from `realm` and send that. A `Bearer`
    /// challenge without a realm is kept as [`Challenge::Other`].
    Bearer {
        /// The token server's URL, as sent (not yet checked).
        realm: String,
        /// The `service` parameter to pass on to the token server, if given.
        service: Option<String>,
        /// The scope the registry says the request needs, if given.
        scope: Option<String>,
        /// `insufficient_scope`, `invalid_token`, …
        error: Option<String>,
    },
    /// A scheme we do not speak (e.g. Negotiate).
    Other {
        /// The scheme name, as sent.
        scheme: String,
    },
}

/// Parse a `WWW-Authenticate` header value into its challenges (RFC 7235:
/// `scheme param=value, param="quoted, value", Other …`). Lenient: malformed
/// parts are skipped, never a panic.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    let mut current: Option<(String, BTreeMap<String, String>)> = None;
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        // A token: either a new scheme, or a parameter name followed by '='.
        let end = rest.find(['=', ',', ' ', '\t']).unwrap_or(rest.len());
        let token = &rest[..end];
        let after = rest[end..].trim_start_matches([' ', '\t']);
        if let (Some(value_part), false) = (after.strip_prefix('='), token.is_empty()) {
            // Parameter (token68 padding `abc==` also lands here; harmless).
            let value_part = value_part.trim_start_matches([' ', '\t']);
            let (value, remaining) = if let Some(quoted) = value_part.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut consumed = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            consumed = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[consumed.min(quoted.len())..])
            } else {
                let end = value_part.find(',').unwrap_or(value_part.len());
                (value_part[..end].trim().to_string(), &value_part[end..])
            };
            if let Some((_, params)) = current.as_mut() {
                params.insert(token.to_ascii_lowercase(), value);
            }
            rest = remaining;
        } else if token.is_empty() {
            // Stray '=' or similar: skip one character.
            let mut chars = rest.chars();
            chars.next();
            rest = chars.as_str();
        } else {
            if let Some(done) = current.take() {
                out.push(make_challenge(done));
            }
            current = Some((token.to_string(), BTreeMap::new()));
            rest = &rest[end..];
        }
    }
    if let Some(done) = current.take() {
        out.push(make_challenge(done));
    }
    out
}

fn make_challenge((scheme, mut params): (String, BTreeMap<String, String>)) -> Challenge {
    if scheme.eq_ignore_ascii_case("basic") {
        Challenge::Basic {
            realm: params.remove("realm"),
        }
    } else if scheme.eq_ignore_ascii_case("bearer") {
        match params.remove("realm") {
            Some(realm) => Challenge::Bearer {
                realm,
                service: params.remove("service"),
                scope: params.remove("scope"),
                error: params.remove("error"),
            },
            None => Challenge::Other { scheme },
        }
    } else {
        Challenge::Other { scheme }
    }
}

// ---------------------------------------------------------------- scopes

/// The resources and actions a request needs: `repository:foo:pull,push`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scopes(BTreeMap<String, BTreeSet<String>>);

impl Scopes {
    /// No scope at all: for the `/v2/` ping and requests on no resource.
    pub fn none() -> Scopes {
        Scopes::default()
    }
    /// Read access to the repository `repo` (its path on the registry).
    pub fn pull(repo: &str) -> Scopes {
        Scopes::none().with(&format!("repository:{repo}"), &["pull"])
    }
    /// Read and write access to the repository `repo`: a push needs both.
    pub fn push(repo: &str) -> Scopes {
        Scopes::none().with(&format!("repository:{repo}"), &["pull", "push"])
    }
    /// Access to the registry's repository list (`/v2/_catalog`).
    pub fn catalog() -> Scopes {
        Scopes::none().with("registry:catalog", &["*"])
    }
    /// Add `actions` on `resource` (`type:name`).
    pub fn with(mut self, resource: &str, actions: &[&str]) -> Scopes {
        let entry = self.0.entry(resource.to_string()).or_default();
        entry.extend(actions.iter().map(|a| a.to_string()));
        self
    }
    /// Everything `self` grants covers everything `other` asks for.
    pub fn covers(&self, other: &Scopes) -> bool {
        other.0.iter().all(|(resource, actions)| {
            self.0
                .get(resource)
                .is_some_and(|have| have.contains("*") || actions.is_subset(have))
        })
    }
    /// The `scope` query values, one per resource.
    pub fn to_strings(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(resource, actions)| {
                let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
                format!("{resource}:{}", actions.join(","))
            })
            .collect()
    }
    /// Whether no scope is asked for (see [`Scopes::none`]).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the registry");
        }
        f.write_str(&self.to_strings().join(" "))
    }
}

// ---------------------------------------------------------------- state

/// What the registry asked for at its `/v2/` ping (or a later 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// The ping needed no authentication: requests go out without it until
    /// a 401 says otherwise.
    Anonymous,
    /// Send the host's username and password with every request.
    Basic,
    /// Fetch a token per scope set from `realm` and send that.
    Bearer {
        /// The token server; only `http` and `https` URLs are accepted.
        realm: Url,
        /// The `service` parameter to pass on to the token server, if given.
        service: Option<String>,
    },
}

impl AuthMode {
    /// The mode a set of challenges asks for; Bearer is preferred.
    pub fn from_challenges(challenges: &[Challenge]) -> Option<AuthMode> {
        let bearer = challenges.iter().find_map(|c| match c {
            Challenge::Bearer { realm, service, .. } => {
                let realm = Url::parse(realm).ok()?;
                matches!(realm.scheme(), "http" | "https").then(|| AuthMode::Bearer {
                    realm,
                    service: service.clone(),
                })
            }
            _ => None,
        });
        bearer.or_else(|| {
            challenges
                .iter()
                .any(|c| matches!(c, Challenge::Basic { .. }))
                .then_some(AuthMode::Basic)
        })
    }
}

struct CachedToken {
    token: Secret,
    valid_until: Instant,
}

/// Per-registry authentication state: the mode, the host's credential
/// (looked up once), and bearer tokens per scope set.
pub struct Authenticator {
    host: String,
    store: Arc<CredentialStore>,
    credential: OnceCell<Option<Credential>>,
    mode: Mutex<Option<AuthMode>>,
    tokens: Mutex<HashMap<Scopes, CachedToken>>,
    /// One fetch at a time per scope set: a burst of requests for a cold
    /// scope set costs one token request, not one each, while fetches for
    /// different scope sets (different repositories) run side by side.
    fetching: Mutex<HashMap<Scopes, Arc<tokio::sync::Mutex<()>>>>,
    /// Where this registry's credentials may go as a token service.
    realms: RealmPolicy,
    /// A withheld credential is reported once per registry, not per token.
    withheld_said: std::sync::atomic::AtomicBool,
}

/// Which token services (`realm` of a Bearer challenge) may receive a
/// registry's credentials. A registry names its realm itself; one that is
/// spoofed or compromised could name any host, and the password would go
/// there. So credentials go only to:
///
/// - the registry's own host (any port), or a host in its domain: the
///   registry host itself when it has two labels (`docker.io` admits
///   `auth.docker.io`), else the host without its first label
///   (`registry.gitlab.com` admits `gitlab.com`), never a bare top-level
///   domain; IP addresses admit only themselves;
/// - a host the registry options list in `token_realms`;
///
/// and only over HTTPS, except to the registry's own host when the registry
/// itself is plain HTTP (a loopback registry for development). Anywhere
/// else, the token is asked for anonymously, and the log says why.
#[derive(Debug, Clone, Default)]
pub struct RealmPolicy {
    /// The registry talks plain HTTP.
    pub plain_http: bool,
    /// Extra hosts from `token_realms`, lowercase.
    pub extra_hosts: Vec<String>,
    /// How long a token request may wait for its answer's headers
    /// (`request_timeout_secs`; zero means the built-in default).
    pub request_timeout: Duration,
}

impl RealmPolicy {
    /// Why credentials for `registry_host` (`host[:port]`) may not go to
    /// `realm`, or `None` when they may.
    pub fn refusal(&self, registry_host: &str, realm: &Url) -> Option<String> {
        let Some(realm_host) = realm.host_str().map(|h| h.to_ascii_lowercase()) else {
            return Some("the realm names no host".to_string());
        };
        let realm_host = realm_host.trim_start_matches('[').trim_end_matches(']');
        let own = host_name(registry_host).to_ascii_lowercase();
        let same_host = realm_host == own;
        let listed = self.extra_hosts.iter().any(|h| h == realm_host);
        let in_domain = registry_domain(&own)
            .is_some_and(|d| realm_host == d || realm_host.ends_with(&format!(".{d}")));
        if !(same_host || listed || in_domain) {
            return Some(format!(
                "the token service {realm_host} is outside the registry's domain \
                 (list it in token_realms in the registry options to trust it)"
            ));
        }
        if realm.scheme() != "https" && !(self.plain_http && same_host) {
            return Some(format!(
                "the token service {realm_host} is asked over {}, not HTTPS",
                realm.scheme()
            ));
        }
        None
    }
}

/// `host[:port]` without the port (and IPv6 brackets).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(inside, _)| inside);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The domain whose hosts may serve `host`'s tokens (see [`RealmPolicy`]).
fn registry_domain(host: &str) -> Option<&str> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let labels = host.split('.').count();
    match labels {
        0 | 1 => None,
        2 => Some(host),
        _ => host
            .split_once('.')
            .map(|(_, rest)| rest)
            .filter(|rest| rest.contains('.')),
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("host", &self.host)
            .field("mode", &self.mode.lock().unwrap())
            .finish_non_exhaustive()
    }
}

/// What [`Authenticator::on_unauthorized`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Reauth {
    /// Fresh authorization may help: send again.
    Retry,
    /// Nothing better to offer.
    GiveUp,
}

impl Authenticator {
    /// State for the registry `host`, whose credential is looked up in
    /// `store` on first need. The mode stays unknown until [`set_mode`].
    ///
    /// [`set_mode`]: Authenticator::set_mode
    pub fn new(host: String, store: Arc<CredentialStore>, realms: RealmPolicy) -> Authenticator {
        Authenticator {
            host,
            store,
            credential: OnceCell::new(),
            mode: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
            realms,
            withheld_said: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The credential to send to the token service `realm`: ours, unless
    /// the [`RealmPolicy`] withholds it.
    async fn credential_for(&self, realm: &Url) -> Result<Option<Credential>, RegistryError> {
        let credential = self.credential().await?;
        let Some(credential) = credential else {
            return Ok(None);
        };
        match self.realms.refusal(&self.host, realm) {
            None => Ok(Some(credential)),
            Some(reason) => {
                if !self
                    .withheld_said
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(
                        registry = %self.host,
                        "credentials withheld from the token service: {reason}; asking anonymously"
                    );
                }
                Ok(None)
            }
        }
    }

    /// The mode learnt so far; `None` before the `/v2/` ping.
    pub fn mode(&self) -> Option<AuthMode> {
        self.mode.lock().unwrap().clone()
    }

    /// Record the mode the ping (or a later 401) asked for.
    pub fn set_mode(&self, mode: AuthMode) {
        *self.mode.lock().unwrap() = Some(mode);
    }

    /// A refusal of our credentials names where they came from.
    pub fn name_the_source(&self, err: RegistryError) -> RegistryError {
        match err {
            RegistryError::Unauthorized {
                registry,
                scope,
                credentials: None,
            } => RegistryError::Unauthorized {
                registry,
                scope,
                credentials: self.store.source_of(&self.host),
            },
            other => other,
        }
    }

    async fn credential(&self) -> Result<Option<Credential>, RegistryError> {
        self.credential
            .get_or_try_init(|| self.store.lookup(&self.host))
            .await
            .cloned()
    }

    /// The `Authorization` value for a request needing `scopes`, if any.
    pub async fn header(
        &self,
        client: &reqwest::Client,
        scopes: &Scopes,
        deadline: Instant,
        max_attempts: u32,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        match self.mode() {
            None | Some(AuthMode::Anonymous) => Ok(None),
            Some(AuthMode::Basic) => match self.credential().await? {
                Some(Credential::Basic { username, password }) => {
                    Ok(Some(basic(&username, &password)?))
                }
                // An identity token cannot answer a Basic challenge.
                _ => Ok(None),
            },
            Some(AuthMode::Bearer { realm, service }) => {
                // A registry token is the bearer token itself.
                if let Some(Credential::RegistryToken(token)) = self.credential().await? {
                    return Ok(Some(bearer(&token)?));
                }
                if let Some(token) = self.cached(scopes) {
                    return Ok(Some(bearer(&token)?));
                }
                let gate = self
                    .fetching
                    .lock()
                    .unwrap()
                    .entry(scopes.clone())
                    .or_default()
                    .clone();
                let _one_at_a_time = gate.lock().await;
                // Another task may have fetched it while we waited.
                if let Some(token) = self.cached(scopes) {
                    return Ok(Some(bearer(&token)?));
                }
                let credential = self.credential_for(&realm).await?;
                let fetched = TokenRequest {
                    client,
                    timeout: self.realms.request_timeout,
                    host: &self.host,
                    realm: &realm,
                    service: service.as_deref(),
                    scopes,
                    credential: credential.as_ref(),
                }
                .fetch(deadline, max_attempts)
                .await;
                self.fetching.lock().unwrap().remove(scopes);
                let fetched = fetched.map_err(|e| self.name_the_source(e))?;
                let header = bearer(&fetched.token)?;
                let now = Instant::now();
                let mut tokens = self.tokens.lock().unwrap();
                // Pruned here, once per fetch, not on every lookup.
                tokens.retain(|_, t| t.valid_until > now);
                tokens.insert(scopes.clone(), fetched);
                Ok(Some(header))
            }
        }
    }

    fn cached(&self, scopes: &Scopes) -> Option<Secret> {
        let now = Instant::now();
        let mut tokens = self.tokens.lock().unwrap();
        if let Some(t) = tokens.get(scopes).filter(|t| t.valid_until > now) {
            return Some(t.token.clone());
        }
        // A token for a wider scope set serves a narrower request (the push
        // token of a mount also serves the PUT that follows). Remember it
        // under the narrower key too, so the next lookup is a map hit.
        let (token, valid_until) = tokens
            .iter()
            .find(|(have, t)| t.valid_until > now && have.covers(scopes))
            .map(|(_, t)| (t.token.clone(), t.valid_until))?;
        tokens.insert(
            scopes.clone(),
            CachedToken {
                token: token.clone(),
                valid_until,
            },
        );
        Some(token)
    }

    /// A request needing `scopes` was answered 401 with `challenges`.
    /// `sent_auth` tells whether it carried an `Authorization` header.
    pub async fn on_unauthorized(
        &self,
        scopes: &Scopes,
        challenges: &[Challenge],
        sent_auth: bool,
    ) -> Result<Reauth, RegistryError> {
        let previous = self.mode();
        let Some(mode) = AuthMode::from_challenges(challenges) else {
            return Ok(Reauth::GiveUp);
        };
        self.set_mode(mode.clone());
        let registry_token = matches!(self.credential().await?, Some(Credential::RegistryToken(_)));
        match mode {
            // The same registry token again cannot help.
            AuthMode::Bearer { .. } if registry_token && sent_auth => Ok(Reauth::GiveUp),
            AuthMode::Bearer { .. } => {
                // The token may have expired early or lacked a scope: drop
                // every cached token that would be picked for this request.
                self.tokens
                    .lock()
                    .unwrap()
                    .retain(|have, _| !have.covers(scopes));
                Ok(Reauth::Retry)
            }
            AuthMode::Basic => {
                let have_basic = matches!(self.credential().await?, Some(Credential::Basic { .. }));
                // Sending the same password again cannot help.
                if have_basic && (!sent_auth || previous != Some(AuthMode::Basic)) {
                    Ok(Reauth::Retry)
                } else {
                    Ok(Reauth::GiveUp)
                }
            }
            AuthMode::Anonymous => Ok(Reauth::GiveUp),
        }
    }
}

/// The one `Basic` authorization value: for a registry that asks for it,
/// and for a token service.
fn basic(username: &str, password: &Secret) -> Result<HeaderValue, RegistryError> {
    let raw = format!("{username}:{}", password.expose());
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    sensitive(&format!("Basic {encoded}"))
}

fn bearer(token: &Secret) -> Result<HeaderValue, RegistryError> {
    sensitive(&format!("Bearer {}", token.expose()))
}

fn sensitive(value: &str) -> Result<HeaderValue, RegistryError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        RegistryError::Credentials(
            "credentials contain characters not allowed in an HTTP header".to_string(),
        )
    })?;
    // Keeps it out of HTTP/2 header compression tables and Debug output.
    header.set_sensitive(true);
    Ok(header)
}

// ---------------------------------------------------------------- tokens

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Longest a token is trusted, whatever its `expires_in` says.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Until when a token fetched at `started` is used. Spec default is 60 s.
/// Renew a little early so that a token never expires between our check and
/// the registry's. Capped, so that `expires_in: 18446744073709551615` from
/// a token server cannot overflow `Instant` arithmetic.
fn token_valid_until(started: Instant, expires_in: Option<u64>) -> Instant {
    let lifetime = Duration::from_secs(expires_in.unwrap_or(60).max(1)).min(MAX_TOKEN_LIFETIME);
    let margin = (lifetime / 10).max(Duration::from_secs(1));
    started + lifetime.saturating_sub(margin)
}

/// One token request: what it asks of which token service, for which
/// registry. Each step of a fetch is one method.
struct TokenRequest<'a> {
    client: &'a reqwest::Client,
    /// How long the request may wait for its answer's headers; zero means
    /// the built-in default.
    timeout: Duration,
    /// The registry the token is for, `host[:port]`.
    host: &'a str,
    realm: &'a Url,
    service: Option<&'a str>,
    scopes: &'a Scopes,
    credential: Option<&'a Credential>,
}

impl TokenRequest<'_> {
    /// Fetch a bearer token, retrying what may pass.
    async fn fetch(
        &self,
        deadline: Instant,
        max_attempts: u32,
    ) -> Result<CachedToken, RegistryError> {
        let clock = RetryClock::new(deadline, max_attempts);
        let shown_url = SafeUrl::new(self.realm);
        let what = || format!("token from {shown_url}");
        with_retries(clock, &what, RegistryError::is_retryable, || async {
            let request = self.build()?;
            let started = Instant::now();
            let response = self.send(request, &shown_url).await?;
            let response = self.accepted(response, &shown_url)?;
            Ok(self.read_answer(response, &shown_url, started).await?)
        })
        .await
    }

    /// An identity token is exchanged through a POST; anything else asks
    /// with a GET.
    fn method(&self) -> &'static str {
        match self.credential {
            Some(Credential::IdentityToken(_)) => "POST",
            _ => "GET",
        }
    }

    /// The request: the OAuth2 `refresh_token` grant for an identity token
    /// (the way docker uses them), else a GET carrying the scopes in its
    /// query and Basic credentials, if there are any.
    fn build(&self) -> Result<reqwest::RequestBuilder, RegistryError> {
        let scope_strings = self.scopes.to_strings();
        if let Some(Credential::IdentityToken(refresh)) = self.credential {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token");
            form.append_pair("refresh_token", refresh.expose());
            form.append_pair("client_id", "promoter");
            if let Some(service) = self.service {
                form.append_pair("service", service);
            }
            if !scope_strings.is_empty() {
                form.append_pair("scope", &scope_strings.join(" "));
            }
            return Ok(self
                .client
                .post(self.realm.clone())
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form.finish()));
        }
        let mut url = self.realm.clone();
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = self.service {
                query.append_pair("service", service);
            }
            for scope in &scope_strings {
                query.append_pair("scope", scope);
            }
        }
        let mut request = self.client.get(url);
        if let Some(Credential::Basic { username, password }) = self.credential {
            request = request.header(AUTHORIZATION, basic(username, password)?);
        }
        Ok(request)
    }

    /// Send `request`, waiting at most the request timeout for its answer.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        shown_url: &SafeUrl,
    ) -> Result<reqwest::Response, RegistryError> {
        let method = self.method();
        let request_timeout = if self.timeout.is_zero() {
            crate::limits::REQUEST_TIMEOUT
        } else {
            self.timeout
        };
        tokio::time::timeout(request_timeout, request.send())
            .await
            .map_err(|_| RegistryError::Transport {
                method: method.to_string(),
                url: shown_url.clone(),
                message: format!(
                    "no answer within {} s (request_timeout_secs)",
                    request_timeout.as_secs()
                ),
                retryable: true,
            })?
            .map_err(|e| reqwest_error(method, shown_url, e))
    }

    /// The answer if it is a success, else the failure its status stands for.
    // A failure is the retry driver's own type (the error, its wait, whether
    // a pacer holds the retry), passed once per attempt: its size is no cost.
    #[allow(clippy::result_large_err)]
    fn accepted(
        &self,
        response: reqwest::Response,
        shown_url: &SafeUrl,
    ) -> Result<reqwest::Response, Failed> {
        let status = response.status();
        match status {
            s if s.is_success() => Ok(response),
            StatusCode::UNAUTHORIZED => Err(RegistryError::Unauthorized {
                registry: self.host.to_string(),
                scope: self.scopes.to_string(),
                // Filled in by the authenticator, which knows the source.
                credentials: None,
            }
            .into()),
            StatusCode::FORBIDDEN => Err(RegistryError::Denied {
                registry: self.host.to_string(),
                scope: self.scopes.to_string(),
            }
            .into()),
            _ => Err(Failed {
                retry_after: super::retry::retry_after(response.headers()),
                paced: false,
                error: RegistryError::Status {
                    method: self.method().to_string(),
                    url: shown_url.clone(),
                    status: status.as_u16(),
                    code: None,
                    detail: Some("token request failed".to_string()),
                },
            }),
        }
    }

    /// The token of a successful answer, valid from `started`.
    async fn read_answer(
        &self,
        response: reqwest::Response,
        shown_url: &SafeUrl,
        started: Instant,
    ) -> Result<CachedToken, RegistryError> {
        // A token answer is a small JSON document: a body past the cap is
        // a hostile or broken token server, not a token.
        let body = read_capped(
            response,
            TOKEN_BODY_LIMIT,
            self.method(),
            Default::default(),
        )
        .await?;
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|_| RegistryError::Protocol {
                what: format!("token from {shown_url}"),
                message: "the answer is not a token JSON document".to_string(),
            })?;
        let token = answer
            .token
            .filter(|t| !t.is_empty())
            .or(answer.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| RegistryError::Protocol {
                what: format!("token from {shown_url}"),
                message: "the answer holds no token".to_string(),
            })?;
        Ok(CachedToken {
            token: Secret::new(token),
            valid_until: token_valid_until(started, answer.expires_in),
        })
    }
}

/// Largest token answer read (real ones are a few KiB; JWTs with many
/// scopes stay well under this).
const TOKEN_BODY_LIMIT: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by review next to the fuzzed `Retry-After` overflow: a token
    /// answer's `expires_in` near `u64::MAX` panicked in `started + lifetime`.
    #[test]
    fn an_absurd_token_lifetime_is_capped_without_overflow() {
        let started = Instant::now();
        assert_eq!(
            token_valid_until(started, Some(u64::MAX)),
            started + MAX_TOKEN_LIFETIME - MAX_TOKEN_LIFETIME / 10
        );
        assert_eq!(
            token_valid_until(started, Some(300)),
            started + Duration::from_secs(270)
        );
        assert_eq!(
            token_valid_until(started, None),
            started + Duration::from_secs(54)
        );
        assert_eq!(token_valid_until(started, Some(0)), started);
    }

    #[test]
    fn parses_bearer_with_quoted_commas_and_several_challenges() {
        let got = parse_challenges(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push", Basic realm="x""#,
        );
        assert_eq!(
            got,
            vec![
                Challenge::Bearer {
                    realm: "https://auth.example/token".into(),
                    service: Some("registry.example".into()),
                    scope: Some("repository:a/b:pull,push".into()),
                    error: None,
                },
                Challenge::Basic {
                    realm: Some("x".into())
                },
            ]
        );
        assert_eq!(
            parse_challenges(r#"basic realm="Registry Realm""#),
            vec![Challenge::Basic {
                realm: Some("Registry Realm".into())
            }]
        );
        assert_eq!(
            parse_challenges(r#"Bearer realm=https://a/t, error="insufficient_scope""#),
            vec![Challenge::Bearer {
                realm: "https://a/t".into(),
                service: None,
                scope: None,
                error: Some("insufficient_scope".into()),
            }]
        );
    }

    #[test]
    fn garbage_never_panics() {
        for input in [
            "",
            "=",
            "==,,",
            "Bearer",
            "Bearer realm=\"",
            "Bearer realm=\"\\",
            "\"",
            ",=,=",
            "Basic abc==",
            "Négociation x=ü",
            "Bearer realm=\"a\\\"b\"",
        ] {
            let _ = parse_challenges(input);
        }
        assert_eq!(
            AuthMode::from_challenges(&parse_challenges("Bearer realm=\"ftp://x\"")),
            None
        );
    }

    #[test]
    fn scopes_render_and_cover() {
        let mount = Scopes::push("dst").with("repository:src", &["pull"]);
        assert_eq!(
            mount.to_strings(),
            vec!["repository:dst:pull,push", "repository:src:pull"]
        );
        assert!(mount.covers(&Scopes::push("dst")));
        assert!(mount.covers(&Scopes::pull("src")));
        assert!(!mount.covers(&Scopes::push("src")));
        assert!(!Scopes::pull("dst").covers(&Scopes::push("dst")));
        assert!(Scopes::catalog().covers(&Scopes::catalog()));
    }

    #[test]
    fn credentials_go_only_to_token_services_in_the_registrys_domain_over_https() {
        let policy = RealmPolicy::default();
        let allowed = |registry: &str, realm: &str| {
            policy
                .refusal(registry, &Url::parse(realm).unwrap())
                .is_none()
        };
        // The public registries' own token services.
        assert!(allowed("docker.io", "https://auth.docker.io/token"));
        assert!(allowed("ghcr.io", "https://ghcr.io/token"));
        assert!(allowed(
            "registry.gitlab.com",
            "https://gitlab.com/jwt/auth"
        ));
        assert!(allowed(
            "myreg.azurecr.io",
            "https://myreg.azurecr.io/oauth2/token"
        ));
        assert!(allowed(
            "registry.example.com:5000",
            "https://auth.example.com/token"
        ));
        // Elsewhere, or in a parent that is a public suffix, or over HTTP.
        assert!(!allowed("docker.io", "https://evil.example/token"));
        assert!(!allowed("registry.foo.co.uk", "https://evil.co.uk/token"));
        assert!(!allowed("gcr.io", "https://evil.io/token"));
        assert!(!allowed("ghcr.io", "http://ghcr.io/token"));
        assert!(!allowed("10.0.0.5:5000", "https://10.0.0.6/token"));
        // A plain-HTTP registry on loopback may use its own host's issuer.
        let plain = RealmPolicy {
            plain_http: true,
            ..RealmPolicy::default()
        };
        let realm = Url::parse("http://127.0.0.1:4000/token").unwrap();
        assert!(plain.refusal("127.0.0.1:5000", &realm).is_none());
        assert!(policy.refusal("127.0.0.1:5000", &realm).is_some());
        // token_realms admits a named host, still only over HTTPS.
        let listed = RealmPolicy {
            extra_hosts: vec!["authn.nvidia.com".to_string()],
            ..RealmPolicy::default()
        };
        let nvidia = Url::parse("https://authn.nvidia.com/token").unwrap();
        assert!(listed.refusal("nvcr.io", &nvidia).is_none());
        assert!(policy.refusal("nvcr.io", &nvidia).is_some());
        let why = policy.refusal("nvcr.io", &nvidia).unwrap();
        assert!(why.contains("token_realms"), "{why}");
    }
}
