//! Listings: the catalog (`/v2/_catalog`), a repository's tags
//! (`tags/list`, with Google's digests where offered), and the `Link`
//! pagination both follow.

use std::collections::HashSet;

use reqwest::header::{HeaderMap, ACCEPT, LINK};
use reqwest::{Method, StatusCode};
use url::Url;

use super::auth::Scopes;
use super::body::read_capped;
use super::transport::{self, drain, Req};
use super::RemoteRegistry;
use crate::limits::QUOTED_TEXT_CHARS;
use crate::reference::{Digest, Endpoint, Repository};
use crate::registry::{RegistryError, SafeUrl, TagListing};
use crate::text::printable_cut;

/// Most pages followed in one listing: a loop guard.
const MAX_PAGES: usize = crate::limits::LISTING_PAGES;

impl RemoteRegistry {
    /// [`crate::registry::Registry::list_repositories`]: the catalog, read
    /// from just before `prefix` to just after its last possible name.
    pub(super) async fn catalog(&self, prefix: &str) -> Result<Vec<Repository>, RegistryError> {
        let prefix = prefix.trim_matches('/');
        let mut url = self.t.url("/v2/_catalog")?;
        url.query_pairs_mut()
            .append_pair("n", &self.t.opts.page_size.to_string());
        // Catalogs are sorted: start just before the prefix and stop after
        // its last possible name, instead of reading the whole registry.
        let until = (!prefix.is_empty()).then(|| format!("{prefix}/~"));
        if let Some(last) = catalog_start(prefix) {
            url.query_pairs_mut().append_pair("last", &last);
        }
        // A 404 here means no catalog API (Docker Hub, some clouds), not an
        // empty registry: say so rather than answer "no repositories".
        let all = self
            .paginate(url, Scopes::catalog(), "repositories", until.as_deref())
            .await?
            .ok_or_else(|| RegistryError::Unsupported {
                registry: self.t.host.clone(),
                operation: "listing repositories (_catalog)".to_string(),
            })?;
        let mut repos: Vec<String> = all
            .into_iter()
            .filter(|r| {
                prefix.is_empty()
                    || r == prefix
                    || r.strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .collect();
        repos.sort();
        repos.dedup();
        let endpoint = Endpoint::Http {
            host: self.t.host.clone(),
        };
        // A name outside the distribution grammar can be neither addressed
        // nor safely printed: it is left out, and said so.
        Ok(repos
            .into_iter()
            .filter_map(|name| match Repository::parse(&endpoint, &name) {
                Ok(repo) => Some(repo),
                Err(e) => {
                    tracing::warn!(registry = %self.t.host, name = %printable_cut(&name, QUOTED_TEXT_CHARS),
                        "catalog lists a name that is no repository path ({}); skipped", e.message);
                    None
                }
            })
            .collect())
    }

    /// [`crate::registry::Registry::list_tags`].
    pub(super) async fn tags(&self, repo: &Repository) -> Result<Vec<String>, RegistryError> {
        let mut url = self.repo_url(repo, "tags/list")?;
        url.query_pairs_mut()
            .append_pair("n", &self.t.opts.page_size.to_string());
        let mut tags = self
            .paginate(url, Scopes::pull(repo.path()), "tags", None)
            .await?
            .unwrap_or_default();
        // A name outside the tag grammar can be neither addressed nor
        // safely printed: it is left out, and said so.
        tags.retain(|tag| {
            let valid = crate::reference::Tag::parse(tag).is_ok();
            if !valid {
                tracing::warn!(repo = %repo, tag = %printable_cut(tag, QUOTED_TEXT_CHARS),
                    "the registry lists a tag outside the tag grammar; skipped");
            }
            valid
        });
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// [`crate::registry::Registry::list_digests`]: Google's `manifest` map
    /// of `tags/list`, where the options say the registry sends one.
    pub(super) async fn tags_with_digests(
        &self,
        repo: &Repository,
    ) -> Result<Option<TagListing>, RegistryError> {
        if !self.t.opts.google_listing {
            return Ok(None);
        }
        let mut url = self.repo_url(repo, "tags/list")?;
        url.query_pairs_mut()
            .append_pair("n", &self.t.opts.page_size.to_string());
        let mut listing = TagListing::default();
        let mut extended = false;
        let mut read_map = |page: &serde_json::Value| {
            let Some(map) = page.get("manifest").and_then(|m| m.as_object()) else {
                return;
            };
            extended = true;
            for (digest, entry) in map {
                let Ok(digest) = Digest::parse(digest) else {
                    continue;
                };
                for tag in entry
                    .get("tag")
                    .and_then(|t| t.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str())
                    .filter_map(|t| crate::reference::Tag::parse(t).ok())
                {
                    listing.tags.insert(tag, digest.clone());
                }
                listing.digests.insert(digest);
            }
        };
        let found = self
            .paginate_with(url, Scopes::pull(repo.path()), "tags", None, &mut read_map)
            .await?;
        match found {
            // No such repository: it holds nothing.
            None => Ok(Some(TagListing::default())),
            Some(_) if extended => Ok(Some(listing)),
            Some(_) => {
                tracing::debug!(registry = %self.t.host,
                    "tags/list carries no digests (google_listing is on): reading tags one by one");
                Ok(None)
            }
        }
    }

    /// Every item of a paginated listing: follow `Link: <…>; rel="next"`
    /// from `first`, collecting `field` of each page. `Ok(None)` when the
    /// first page is a 404. With `until`, stop as soon as a page ends past
    /// it: catalogs are sorted, so nothing later can match.
    async fn paginate(
        &self,
        first: Url,
        scopes: Scopes,
        field: &'static str,
        until: Option<&str>,
    ) -> Result<Option<Vec<String>>, RegistryError> {
        self.paginate_with(first, scopes, field, until, &mut |_| {})
            .await
    }

    /// [`RemoteRegistry::paginate`], showing each page's whole JSON to
    /// `each_page` too (for fields beside the names, such as Google's
    /// `manifest` map).
    async fn paginate_with(
        &self,
        first: Url,
        scopes: Scopes,
        field: &'static str,
        until: Option<&str>,
        each_page: &mut (dyn FnMut(&serde_json::Value) + Send),
    ) -> Result<Option<Vec<String>>, RegistryError> {
        let mut out = Vec::new();
        let mut url = first;
        let mut seen = HashSet::new();
        let mut read_total = 0usize;
        for page in 0..MAX_PAGES {
            let req = Req::new(Method::GET, url.clone(), scopes.clone())
                .header(ACCEPT, "application/json");
            let response = self.t.send(&req).await?;
            if response.status() == StatusCode::NOT_FOUND && page == 0 {
                drain(response).await;
                return Ok(None);
            }
            if !response.status().is_success() {
                return Err(self.error(&req, response).await);
            }
            let next = next_link(response.headers());
            let body = read_capped(
                response,
                crate::limits::LISTING_PAGE_BYTES,
                req.method.as_str(),
                self.t.pace(),
            )
            .await?;
            read_total += body.len();
            if read_total > crate::limits::LISTING_BYTES {
                return Err(RegistryError::Limit {
                    what: SafeUrl::new(&url).to_string(),
                    message: format!(
                        "listing pages add up to more than {} bytes; refusing to read more",
                        crate::limits::LISTING_BYTES
                    ),
                });
            }
            let value: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                    what: SafeUrl::new(&url).to_string(),
                    message: format!("not a JSON listing: {e}"),
                })?;
            if let Some(items) = value.get(field).and_then(|v| v.as_array()) {
                out.extend(items.iter().filter_map(|v| v.as_str()).map(str::to_string));
            }
            each_page(&value);
            if out.len() > crate::limits::LISTED_NAMES {
                return Err(RegistryError::Limit {
                    what: SafeUrl::new(&url).to_string(),
                    message: format!(
                        "listing returns more than {} names; refusing to hold more",
                        crate::limits::LISTED_NAMES
                    ),
                });
            }
            let past_range =
                until.is_some_and(|until| out.last().is_some_and(|last| last.as_str() > until));
            let Some(next) = next.filter(|_| !past_range) else {
                return Ok(Some(out));
            };
            let next = url.join(&next).map_err(|e| RegistryError::Protocol {
                what: SafeUrl::new(&url).to_string(),
                message: format!("bad Link header: {e}"),
            })?;
            if !transport::same_origin(&next, &url) {
                // Our credentials go only to the registry itself.
                return Err(RegistryError::Protocol {
                    what: SafeUrl::new(&url).to_string(),
                    message: format!("Link to another host ({})", SafeUrl::new(&next)),
                });
            }
            if !seen.insert(next.as_str().to_string()) {
                return Err(RegistryError::Protocol {
                    what: SafeUrl::new(&url).to_string(),
                    message: "Link pagination loops".to_string(),
                });
            }
            url = next;
        }
        Err(RegistryError::Limit {
            what: SafeUrl::new(&url).to_string(),
            message: format!("more than {MAX_PAGES} pages; refusing to read more"),
        })
    }
}

/// A `last=` value that sorts just before `prefix` and after every name that
/// sorts before it: the prefix with its last character decremented, then
/// '~' (greater than every character a repository name can hold).
fn catalog_start(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    let last = bytes.pop()?;
    bytes.push(last.checked_sub(1)?);
    bytes.push(b'~');
    String::from_utf8(bytes).ok()
}

/// The `rel="next"` target of a `Link` header, if any.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(LINK) {
        let Ok(text) = value.to_str() else { continue };
        let mut rest = text;
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('>') else { break };
            let target = &after[..close];
            let params_end = after[close..].find('<').map_or(after.len(), |i| close + i);
            let params = &after[close + 1..params_end];
            let is_next = params.split(';').any(|p| {
                let p = p.trim().trim_end_matches(',').trim();
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("rel")
                        && v.trim()
                            .trim_matches('"')
                            .split_ascii_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                })
            });
            if is_next {
                return Some(target.to_string());
            }
            rest = &after[params_end..];
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn catalog_listing_starts_just_before_the_prefix() {
        assert_eq!(super::catalog_start("prod").as_deref(), Some("proc~"));
        assert_eq!(super::catalog_start("a/b0").as_deref(), Some("a/b/~"));
        assert_eq!(super::catalog_start(""), None);
        // Every name under the prefix sorts after the start, and the names
        // just before it do not.
        let start = super::catalog_start("prod").unwrap();
        for under in ["prod", "prod/a", "prod-x", "prod/zzz"] {
            assert!(under > start.as_str(), "{under}");
        }
        for before in ["proc", "proc/zzz", "procz"] {
            assert!(before < start.as_str(), "{before}");
        }
    }

    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn link_headers_yield_the_next_page() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static(r#"</v2/_catalog?last=b&n=2>; rel="next""#),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/v2/_catalog?last=b&n=2"));
        h.insert(
            LINK,
            HeaderValue::from_static(
                r#"<https://x/prev>; rel="prev", <https://x/next?a=1,2>; rel=next"#,
            ),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://x/next?a=1,2"));
        h.insert(
            LINK,
            HeaderValue::from_static(r#"<https://x/a>; rel="first""#),
        );
        assert_eq!(next_link(&h), None);
        for junk in ["<", ">", "<<>>", "<a>; rel", "rel=next"] {
            h.insert(LINK, HeaderValue::from_static(junk));
            let _ = next_link(&h);
        }
    }
}
