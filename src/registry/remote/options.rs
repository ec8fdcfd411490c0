//! Knobs for talking to HTTP registries, per registry and for all of them.
//!
//! The shape is serde-deserialisable so that the CLI (or a config file) can
//! fill it: `defaults` apply to every registry, `registries` override them for
//! one `host[:port]` (as written in the manifests, after Docker Hub
//! normalisation, e.g. `docker.io`, `localhost:5000`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Options for every HTTP registry, with per-registry overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteOptions {
    /// Applied to every registry unless an entry in `registries` says otherwise.
    pub defaults: RegistryOptions,
    /// Per registry, keyed by `host[:port]`.
    pub registries: BTreeMap<String, RegistryOptions>,
}

impl RemoteOptions {
    /// The options in force for `host` (`host[:port]`), every field resolved.
    pub fn for_host(&self, host: &str) -> ResolvedOptions {
        let specific = self.registries.get(host).cloned().unwrap_or_default();
        specific.over(&self.defaults).resolve(host)
    }
}

/// One registry's options. Every field is optional: unset fields fall back to
/// [`RemoteOptions::defaults`], then to the built-in defaults documented on
/// each field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryOptions {
    /// Talk plain HTTP instead of HTTPS. Default: plain for loopback hosts
    /// (`127.0.0.0/8`, `::1`, `localhost`) as docker does, unless a CA file or
    /// a client certificate is configured; HTTPS for everything else.
    pub plain_http: Option<bool>,
    /// A PEM file of CA certificates trusted for this registry, in addition
    /// to the system roots.
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate (chain) for mutual TLS; needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// The PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Requests in flight at once to this registry. Default 16.
    pub max_in_flight: Option<usize>,
    /// The most requests per second to this registry, every request
    /// counted: a quota's ceiling. Default: none (unpaced until the
    /// registry answers 429, when `adaptive` learns its pace).
    pub requests_per_second: Option<f64>,
    /// The same ceiling per minute, as quotas are often written; with
    /// both, the lower holds. Default: none.
    pub requests_per_minute: Option<f64>,
    /// The most writes (POST, PUT, PATCH, DELETE) per second, a budget
    /// apart from (and within) the one above: Artifact Registry meters
    /// writes apart. Default: none.
    pub write_requests_per_second: Option<f64>,
    /// The same per minute. Default: none.
    pub write_requests_per_minute: Option<f64>,
    /// Learn the registry's pace from its answers: a 429 cuts the request
    /// rate to what the registry accepted and halves the in-flight limit,
    /// rising latency cuts the in-flight limit, clean answers grow both
    /// back (never past the ceilings above), and a 429's retry waits for
    /// the pace rather than a backoff of its own. Default true.
    pub adaptive: Option<bool>,
    /// Upload blobs in PATCH chunks instead of one streaming PUT.
    /// Default false; chunked is also the automatic fallback when a registry
    /// refuses a monolithic PUT.
    pub chunked_upload: Option<bool>,
    /// Chunk size for chunked uploads, in bytes (also the memory one chunked
    /// upload holds). Default 8 MiB.
    pub chunk_size: Option<u64>,
    /// How long one operation may keep retrying transient failures (429,
    /// 5xx, connection errors), in seconds. Default 120.
    pub retry_deadline_secs: Option<f64>,
    /// Most attempts of one request, first included. Default 10.
    pub max_attempts: Option<u32>,
    /// TCP+TLS connect timeout, in seconds. Default 30.
    pub connect_timeout_secs: Option<f64>,
    /// Longest silence while reading a response, in seconds. Default 120.
    pub read_timeout_secs: Option<f64>,
    /// Page size (`n`) asked of `_catalog` and `tags/list`. Default 1000
    /// (the most docker-registry accepts).
    pub page_size: Option<u32>,
    /// How long a request may wait for its answer's headers, in seconds
    /// (a body being sent adds its size at `min_bytes_per_second`).
    /// Default 60.
    pub request_timeout_secs: Option<f64>,
    /// The slowest a body may come or go, in bytes per second averaged over
    /// `pace_window_secs`; below it the transfer fails (and is retried). 0
    /// turns the floor off. Default 16384.
    pub min_bytes_per_second: Option<u64>,
    /// The window `min_bytes_per_second` is averaged over, in seconds (also
    /// the longest total silence a body may keep). Default 30.
    pub pace_window_secs: Option<f64>,
    /// Ask `tags/list` for Google's digest listing (its `manifest` map) and,
    /// when it answers with one, read a repository in one request instead
    /// of one HEAD per tag. Default: on for `gcr.io` and `*.gcr.io`, off
    /// elsewhere (asking a registry without it costs a request per
    /// repository).
    pub google_listing: Option<bool>,
    /// Hosts besides the registry's own domain that may receive its
    /// credentials as a token service (`realm` of a Bearer challenge), e.g.
    /// `["authn.nvidia.com"]`. Default: none; see README, "Credentials".
    pub token_realms: Option<Vec<String>>,
    /// The `host[:port]` to talk to instead of the registry's own: a mirror
    /// or pull-through cache that holds the same repositories (for
    /// `docker.io`, say). Manifests, credentials and these options still go
    /// by the registry's name; plain HTTP defaults by this host. Default:
    /// the registry itself.
    pub endpoint: Option<String>,
    /// Skip TLS certificate verification for this registry (a test
    /// registry with a certificate nobody signed). Anyone on the path can
    /// then read and change what is copied: logged as a warning on every
    /// run. Default false; prefer `ca_file`.
    pub insecure: Option<bool>,
}

impl RegistryOptions {
    /// `self`, with unset fields taken from `base`.
    pub fn over(&self, base: &RegistryOptions) -> RegistryOptions {
        RegistryOptions {
            plain_http: self.plain_http.or(base.plain_http),
            ca_file: self.ca_file.clone().or_else(|| base.ca_file.clone()),
            client_cert: self
                .client_cert
                .clone()
                .or_else(|| base.client_cert.clone()),
            client_key: self.client_key.clone().or_else(|| base.client_key.clone()),
            max_in_flight: self.max_in_flight.or(base.max_in_flight),
            requests_per_second: self.requests_per_second.or(base.requests_per_second),
            requests_per_minute: self.requests_per_minute.or(base.requests_per_minute),
            write_requests_per_second: self
                .write_requests_per_second
                .or(base.write_requests_per_second),
            write_requests_per_minute: self
                .write_requests_per_minute
                .or(base.write_requests_per_minute),
            adaptive: self.adaptive.or(base.adaptive),
            chunked_upload: self.chunked_upload.or(base.chunked_upload),
            chunk_size: self.chunk_size.or(base.chunk_size),
            retry_deadline_secs: self.retry_deadline_secs.or(base.retry_deadline_secs),
            max_attempts: self.max_attempts.or(base.max_attempts),
            connect_timeout_secs: self.connect_timeout_secs.or(base.connect_timeout_secs),
            read_timeout_secs: self.read_timeout_secs.or(base.read_timeout_secs),
            page_size: self.page_size.or(base.page_size),
            request_timeout_secs: self.request_timeout_secs.or(base.request_timeout_secs),
            min_bytes_per_second: self.min_bytes_per_second.or(base.min_bytes_per_second),
            pace_window_secs: self.pace_window_secs.or(base.pace_window_secs),
            google_listing: self.google_listing.or(base.google_listing),
            token_realms: self
                .token_realms
                .clone()
                .or_else(|| base.token_realms.clone()),
            endpoint: self.endpoint.clone().or_else(|| base.endpoint.clone()),
            insecure: self.insecure.or(base.insecure),
        }
    }

    /// Every field decided, for `host`.
    pub fn resolve(&self, host: &str) -> ResolvedOptions {
        let has_tls_material = self.ca_file.is_some() || self.client_cert.is_some();
        let secs = |v: Option<f64>, default: f64| {
            Duration::from_secs_f64(v.filter(|s| s.is_finite() && *s >= 0.0).unwrap_or(default))
        };
        ResolvedOptions {
            plain_http: self.plain_http.unwrap_or_else(|| {
                is_loopback_host(self.endpoint.as_deref().unwrap_or(host)) && !has_tls_material
            }),
            endpoint: self.endpoint.clone(),
            insecure: self.insecure.unwrap_or(false),
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            max_in_flight: self
                .max_in_flight
                .unwrap_or(crate::limits::REQUESTS_IN_FLIGHT_PER_REGISTRY)
                .max(1),
            requests_per_second: per_second(self.requests_per_second, self.requests_per_minute),
            write_requests_per_second: per_second(
                self.write_requests_per_second,
                self.write_requests_per_minute,
            ),
            adaptive: self.adaptive.unwrap_or(true),
            chunked_upload: self.chunked_upload.unwrap_or(false),
            chunk_size: self.chunk_size.unwrap_or(8 << 20).max(64 << 10),
            retry_deadline: secs(self.retry_deadline_secs, 120.0),
            max_attempts: self.max_attempts.unwrap_or(10).max(1),
            connect_timeout: secs(self.connect_timeout_secs, 30.0),
            read_timeout: secs(self.read_timeout_secs, 120.0),
            page_size: self.page_size.unwrap_or(1000).max(1),
            request_timeout: secs(
                self.request_timeout_secs,
                crate::limits::REQUEST_TIMEOUT.as_secs_f64(),
            ),
            min_bytes_per_second: self
                .min_bytes_per_second
                .unwrap_or(crate::limits::MIN_BYTES_PER_SECOND),
            pace_window: secs(
                self.pace_window_secs,
                crate::limits::PACE_WINDOW.as_secs_f64(),
            )
            .max(Duration::from_millis(100)),
            google_listing: self.google_listing.unwrap_or_else(|| is_google_host(host)),
            token_realms: self
                .token_realms
                .iter()
                .flatten()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        }
    }
}

/// [`RegistryOptions`] with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedOptions {
    /// Talk plain HTTP rather than HTTPS.
    pub plain_http: bool,
    /// Extra CA certificates (PEM) to trust; `None` for the system roots only.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; `None` for no client certificate.
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Requests in flight at once to this registry; at least 1.
    pub max_in_flight: usize,
    /// The ceiling of every request's rate, per second (the lower of
    /// `requests_per_second` and `requests_per_minute / 60`); `None` for
    /// none (also when the settings were zero, negative or not finite).
    pub requests_per_second: Option<f64>,
    /// The ceiling of writes' rate, per second, the same way.
    pub write_requests_per_second: Option<f64>,
    /// Learn the pace from 429s and latency.
    pub adaptive: bool,
    /// Upload blobs in PATCH chunks from the start.
    pub chunked_upload: bool,
    /// Chunk size for chunked uploads, in bytes; at least 64 KiB.
    pub chunk_size: u64,
    /// How long one operation may keep retrying transient failures.
    pub retry_deadline: Duration,
    /// Most attempts of one request, first included; at least 1.
    pub max_attempts: u32,
    /// TCP+TLS connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response.
    pub read_timeout: Duration,
    /// Page size (`n`) asked of `_catalog` and `tags/list`; at least 1.
    pub page_size: u32,
    /// How long a request may wait for its answer's headers.
    pub request_timeout: Duration,
    /// The slowest a body may come or go (0: no floor).
    pub min_bytes_per_second: u64,
    /// The window `min_bytes_per_second` is averaged over.
    pub pace_window: Duration,
    /// Extra hosts that may receive credentials as a token service
    /// (lowercase).
    pub token_realms: Vec<String>,
    /// Read repositories through Google's `tags/list` digest listing.
    pub google_listing: bool,
    /// Where to connect instead of the registry's own host.
    pub endpoint: Option<String>,
    /// TLS certificates are not verified.
    pub insecure: bool,
}

/// The lower of a per-second and a per-minute rate, per second; `None` when
/// neither is a usable rate.
fn per_second(per_second: Option<f64>, per_minute: Option<f64>) -> Option<f64> {
    let usable = |r: &f64| r.is_finite() && *r > 0.0;
    let a = per_second.filter(usable);
    let b = per_minute.filter(usable).map(|m| m / 60.0);
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Google's registries, whose `tags/list` lists digests too.
fn is_google_host(host: &str) -> bool {
    let name = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    name == "gcr.io" || name.ends_with(".gcr.io")
}

impl Default for ResolvedOptions {
    fn default() -> Self {
        RegistryOptions::default().resolve("registry.invalid")
    }
}

/// Whether `host` (`name[:port]`) is a loopback address or `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port or [v6]
        rest.split_once(']').map_or(rest, |(inside, _)| inside)
    } else if host.matches(':').count() == 1 {
        host.split_once(':').map_or(host, |(n, _)| n)
    } else {
        host
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_default_to_plain_http() {
        for host in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost",
            "localhost:80",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback_host(host), "{host}");
            assert!(RemoteOptions::default().for_host(host).plain_http, "{host}");
        }
        for host in [
            "gcr.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:1",
        ] {
            assert!(
                !RemoteOptions::default().for_host(host).plain_http,
                "{host}"
            );
        }
    }

    #[test]
    fn an_endpoint_decides_plain_http_by_where_requests_go() {
        let opts: RemoteOptions = serde_json::from_str(
            r#"{"registries": {"docker.io": {"endpoint": "127.0.0.1:5000"}, "quay.io": {"endpoint": "mirror.example"}}}"#,
        )
        .unwrap();
        let hub = opts.for_host("docker.io");
        assert_eq!(hub.endpoint.as_deref(), Some("127.0.0.1:5000"));
        assert!(
            hub.plain_http,
            "a loopback mirror talks HTTP, as the registry would"
        );
        assert!(!opts.for_host("quay.io").plain_http);
        assert_eq!(opts.for_host("gcr.io").endpoint, None);
    }

    #[test]
    fn a_ca_file_means_tls_even_on_loopback() {
        let mut opts = RemoteOptions::default();
        opts.registries.insert(
            "127.0.0.1:5443".into(),
            RegistryOptions {
                ca_file: Some("ca.pem".into()),
                ..Default::default()
            },
        );
        assert!(!opts.for_host("127.0.0.1:5443").plain_http);
    }

    #[test]
    fn per_registry_entries_override_defaults_field_by_field() {
        let opts: RemoteOptions = serde_json::from_value(serde_json::json!({
            "defaults": {"max_in_flight": 4, "requests_per_second": 10.0},
            "registries": {"gcr.io": {"max_in_flight": 2}}
        }))
        .unwrap();
        let gcr = opts.for_host("gcr.io");
        assert_eq!(gcr.max_in_flight, 2);
        assert_eq!(gcr.requests_per_second, Some(10.0));
        let other = opts.for_host("quay.io");
        assert_eq!(other.max_in_flight, 4);
        assert_eq!(other.page_size, 1000);
        assert!(gcr.adaptive, "adaptive by default");
        assert!(serde_json::from_value::<RemoteOptions>(
            serde_json::json!({"defaults": {"nope": 1}})
        )
        .is_err());
    }

    #[test]
    fn per_minute_rates_are_per_second_ceilings_and_the_lower_holds() {
        let opts: RemoteOptions = serde_json::from_value(serde_json::json!({
            "defaults": {"requests_per_minute": 600.0, "requests_per_second": 20.0,
                         "write_requests_per_minute": 120.0},
            "registries": {"a.io": {"adaptive": false, "requests_per_second": 5.0}}
        }))
        .unwrap();
        let b = opts.for_host("b.io");
        assert_eq!(b.requests_per_second, Some(10.0));
        assert_eq!(b.write_requests_per_second, Some(2.0));
        assert!(b.adaptive);
        let a = opts.for_host("a.io");
        assert_eq!(a.requests_per_second, Some(5.0));
        assert!(!a.adaptive);
        assert_eq!(
            RemoteOptions::default()
                .for_host("c.io")
                .requests_per_second,
            None
        );
    }
}
