//! Sinker's image manifest as Sinker holds it (plexsystems/sinker at
//! e4323d1b, `internal/manifest/manifest.go` and
//! `internal/docker/registrypath.go`): plain strings, its string rules for
//! references (`RegistryPath`), where each source goes (`TargetImage`,
//! Docker Hub, quay.io and ghcr.io targets flattened, digests tagged with
//! their hex), and how `create` and `update` rewrite it (`Update`). Ported
//! rule for rule, quirks included, so that `promoter sinker` writes and
//! lists exactly what Sinker does. Pure.

/// Sinker's `RegistryPath`: a reference read by string rules, not by a
/// grammar (`localhost:5000/foo:v1` has the "tag" `5000/foo`, as in Sinker).
pub mod registry_path {
    /// The text between the first and the second `@`.
    pub fn digest(r: &str) -> String {
        if !r.contains('@') {
            return String::new();
        }
        r.split('@').nth(1).unwrap_or_default().to_string()
    }

    /// The text between the first and the second `:`, when there is no `@`.
    pub fn tag(r: &str) -> String {
        if r.contains('@') || !r.contains(':') {
            return String::new();
        }
        r.split(':').nth(1).unwrap_or_default().to_string()
    }

    /// The first `/` component, when the reference (its tag left out) has
    /// a `.` anywhere.
    pub fn host(r: &str) -> String {
        let tag = tag(r);
        let without_tag = if tag.is_empty() {
            r.to_string()
        } else {
            r.replace(&format!(":{tag}"), "")
        };
        if !without_tag.contains('.') {
            return String::new();
        }
        r.split('/').next().unwrap_or_default().to_string()
    }

    /// What is left once the tag, digest and host are taken out.
    pub fn repository(r: &str) -> String {
        let mut repository = r.to_string();
        let tag = tag(r);
        if !tag.is_empty() {
            repository = repository.replace(&format!(":{tag}"), "");
        }
        let digest = digest(r);
        if !digest.is_empty() {
            repository = repository.replace(&format!("@{digest}"), "");
        }
        let host = host(r);
        if !host.is_empty() {
            repository = repository.replace(&host, "");
        }
        repository.trim_start_matches('/').to_string()
    }
}

use registry_path as rp;

/// Names of environment variables holding a user name and password.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// The variable naming the user.
    pub username: String,
    /// The variable naming the password.
    pub password: String,
}

/// Where images go: a host (empty: Docker Hub) and a path in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// The registry host; empty for Docker Hub.
    pub host: String,
    /// The path below it.
    pub repository: String,
    /// Its credentials' variables (never read by promoter).
    pub auth: Auth,
}

/// One image of the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// Its path, without host.
    pub repository: String,
    /// Its host; empty for Docker Hub.
    pub host: String,
    /// Where it goes (the manifest's, once read, unless it has its own host).
    pub target: Target,
    /// Its tag (wins over `digest`).
    pub tag: String,
    /// Its digest.
    pub digest: String,
    /// Its credentials' variables (never read by promoter).
    pub auth: Auth,
}

/// A Sinker image manifest (`.images.yaml`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkerFile {
    /// Where every source goes unless it says otherwise.
    pub target: Target,
    /// The images, in file order.
    pub sources: Vec<Source>,
}

impl Source {
    /// Sinker's `Image()`: `[host/][repository][:tag | @digest]`.
    pub fn image(&self) -> String {
        let mut source = if !self.tag.is_empty() {
            format!(":{}", self.tag)
        } else if !self.digest.is_empty() {
            format!("@{}", self.digest)
        } else {
            String::new()
        };
        if !self.repository.is_empty() {
            source = format!("/{}{source}", self.repository);
        }
        if !self.host.is_empty() {
            source = format!("/{}{source}", self.host);
        }
        source.trim_start_matches('/').to_string()
    }

    /// Sinker's `TargetImage()`: below the target's host and repository,
    /// the source's repository (its last component only on a host without
    /// nested repositories), tagged with the tag or the digest's hex.
    pub fn target_image(&self) -> String {
        let mut target = if !self.tag.is_empty() {
            format!(":{}", self.tag)
        } else if !self.digest.is_empty() {
            format!(":{}", self.digest.replace("sha256:", ""))
        } else {
            String::new()
        };
        if !self.repository.is_empty() {
            target = format!("/{}{target}", self.target_path());
        }
        if !self.target.repository.is_empty() {
            target = format!("/{}{target}", self.target.repository);
        }
        if !self.target.host.is_empty() {
            target = format!("/{}{target}", self.target.host);
        }
        target.trim_start_matches('/').to_string()
    }

    /// The source's repository as it is written below the target: whole,
    /// or flattened to its last component (`filepath.Base`).
    pub fn target_path(&self) -> String {
        if nested_repositories(&self.target.host) {
            self.repository.clone()
        } else {
            let trimmed = self.repository.trim_end_matches('/');
            trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
        }
    }
}

/// Sinker's `hostSupportsNestedRepositories`: not quay.io, ghcr.io nor
/// Docker Hub (an empty host), by a substring test on the host.
pub fn nested_repositories(host: &str) -> bool {
    !(host.contains("quay.io")
        || host.contains("ghcr.io")
        || host.contains("docker.io")
        || host.is_empty())
}

impl SinkerFile {
    /// What Sinker's `Get` does after reading: a source whose target has
    /// no host gets the manifest's target, whole.
    pub fn inherit(mut self) -> SinkerFile {
        for source in &mut self.sources {
            if source.target.host.is_empty() {
                source.target = self.target.clone();
            }
        }
        self
    }

    /// Sinker's `Manifest.Update(images)` (`create` and `update`): one
    /// source per image, in order; an image that matches a source (by host
    /// and repository, of the source or of its target) keeps its
    /// repository, host, auth and a target of its own; the tag and digest
    /// are the image's.
    pub fn update(&self, images: &[String]) -> SinkerFile {
        let mut sources = Vec::new();
        for image in images {
            let mut updated = Source {
                tag: rp::tag(image),
                digest: rp::digest(image),
                ..Source::default()
            };
            let Some(found) = self.find(image) else {
                updated.host = rp::host(image);
                if updated.host == self.target.host {
                    updated.host = source_host_of(&rp::repository(image)).to_string();
                }
                let repository = rp::repository(image).replacen(&self.target.repository, "", 1);
                updated.repository = repository.trim_start_matches('/').to_string();
                sources.push(updated);
                continue;
            };
            updated.repository = found.repository.clone();
            updated.host = found.host.clone();
            updated.auth = found.auth.clone();
            if found.target.host != self.target.host
                || found.target.repository != self.target.repository
            {
                updated.target = found.target.clone();
            }
            sources.push(updated);
        }
        SinkerFile {
            target: self.target.clone(),
            sources,
        }
    }

    /// Sinker's `findSourceInManifest`.
    fn find(&self, image: &str) -> Option<&Source> {
        let (host, repository) = (rp::host(image), rp::repository(image));
        self.sources.iter().find(|s| {
            let (source, target) = (s.image(), s.target_image());
            (host == rp::host(&source) && repository == rp::repository(&source))
                || (host == rp::host(&target) && repository == rp::repository(&target))
        })
    }
}

/// Sinker's `getSourceHostFromRepository`, its table in declaration
/// order (Sinker iterates a Go map: the order is random there).
pub fn source_host_of(repository: &str) -> &'static str {
    const HOSTS: [(&str, &str); 10] = [
        ("kubernetes-ingress-controller", "quay.io"),
        ("coreos", "quay.io"),
        ("open-policy-agent", "quay.io"),
        ("twistlock", "registry.twistlock.com"),
        ("etcd", "k8s.gcr.io"),
        ("kube-apiserver", "k8s.gcr.io"),
        ("coredns", "k8s.gcr.io"),
        ("kube-proxy", "k8s.gcr.io"),
        ("kube-scheduler", "k8s.gcr.io"),
        ("kube-controller-manager", "k8s.gcr.io"),
    ];
    HOSTS
        .iter()
        .find(|(segment, _)| repository.contains(segment))
        .map_or("", |(_, host)| host)
}

/// Sinker's `GetSourcesFromImages` (`push`/`copy --images`): each image,
/// once (case-insensitively), below `target`.
pub fn sources_of_images(images: &[String], target: &str) -> Vec<Source> {
    let target = Target {
        host: rp::host(target),
        repository: rp::repository(target),
        auth: Auth::default(),
    };
    dedupe(images)
        .into_iter()
        .map(|image| Source {
            host: rp::host(&image),
            target: target.clone(),
            repository: rp::repository(&image),
            tag: rp::tag(&image),
            digest: rp::digest(&image),
            auth: Auth::default(),
        })
        .collect()
}

/// Sinker's `dedupeImages`: the first of each, compared without case;
/// empty strings dropped.
pub fn dedupe(images: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for image in images {
        if !image.is_empty() && !out.iter().any(|o| o.to_lowercase() == image.to_lowercase()) {
            out.push(image.clone());
        }
    }
    out
}

/// Sinker's `getManifestLocation`: a path without `.yaml` or `.yml` in it
/// is a directory holding `.images.yaml`.
pub fn manifest_location(path: &str) -> std::path::PathBuf {
    if path.contains(".yaml") || path.contains(".yml") {
        std::path::PathBuf::from(path)
    } else {
        std::path::Path::new(path).join(".images.yaml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(host: &str, repository: &str, tag: &str, digest: &str, target: Target) -> Source {
        Source {
            host: host.into(),
            repository: repository.into(),
            tag: tag.into(),
            digest: digest.into(),
            target,
            ..Source::default()
        }
    }
    fn target(host: &str, repository: &str) -> Target {
        Target {
            host: host.into(),
            repository: repository.into(),
            ..Target::default()
        }
    }

    /// internal/docker/registrypath_test.go, every case, and the derived
    /// quirks of TESTCASES.md §F1.
    #[test]
    fn registry_path_as_sinkers_tests_say() {
        let cases = [
            ("", "", "", "", ""),
            ("host.com", "host.com", "", "", ""),
            ("host.com/", "host.com", "", "", ""),
            ("repo:v1.0.0", "", "repo", "v1.0.0", ""),
            (
                "repo/repository:v1.0.0",
                "",
                "repo/repository",
                "v1.0.0",
                "",
            ),
            ("host.com/repo", "host.com", "repo", "", ""),
            ("host.com/repo/more", "host.com", "repo/more", "", ""),
            ("host.com/repo:v1.0.0", "host.com", "repo", "v1.0.0", ""),
            (
                "host.com/repo@sha256:abc123",
                "host.com",
                "repo",
                "",
                "sha256:abc123",
            ),
            (
                "some/repo@sha256:abc123",
                "",
                "some/repo",
                "",
                "sha256:abc123",
            ),
            (
                "docker.io/library/busybox:1.0",
                "docker.io",
                "library/busybox",
                "1.0",
                "",
            ),
            ("localhost:5000/foo:v1", "", "localhost:v1", "5000/foo", ""),
            (
                "myreg.io:5000/foo:v1",
                "myreg.io:5000",
                "myreg.io:v1",
                "5000/foo",
                "",
            ),
            ("repo/foo.bar:v1", "repo", "foo.bar", "v1", ""),
            ("a/b:1.0:2", "", "a/b:2", "1.0", ""),
            ("plexsystems", "", "plexsystems", "", ""),
            ("mycompany.com/myrepo", "mycompany.com", "myrepo", "", ""),
        ];
        for (input, host, repository, tag, digest) in cases {
            assert_eq!(rp::host(input), host, "host of {input:?}");
            assert_eq!(rp::repository(input), repository, "repository of {input:?}");
            assert_eq!(rp::tag(input), tag, "tag of {input:?}");
            assert_eq!(rp::digest(input), digest, "digest of {input:?}");
        }
    }

    /// internal/manifest/manifest_test.go's Image/TargetImage cases (C1–C5)
    /// and TESTCASES.md §F2.
    #[test]
    fn image_and_target_image_as_sinkers_tests_say() {
        let t = target("target.com", "");
        let tr = target("target.com", "bar");
        let cases = [
            (
                source("source.com", "", "v1.0.0", "", t.clone()),
                "source.com:v1.0.0",
                "target.com:v1.0.0",
            ),
            (
                source("source.com", "", "v1.0.0", "", tr.clone()),
                "source.com:v1.0.0",
                "target.com/bar:v1.0.0",
            ),
            (
                source("source.com", "repo", "v1.0.0", "", t.clone()),
                "source.com/repo:v1.0.0",
                "target.com/repo:v1.0.0",
            ),
            (
                source("source.com", "repo", "v1.0.0", "", tr.clone()),
                "source.com/repo:v1.0.0",
                "target.com/bar/repo:v1.0.0",
            ),
            (
                source("source.com", "repo/foo", "v1.0.0", "", t.clone()),
                "source.com/repo/foo:v1.0.0",
                "target.com/repo/foo:v1.0.0",
            ),
            (
                source("source.com", "repo/foo", "v1.0.0", "", tr),
                "source.com/repo/foo:v1.0.0",
                "target.com/bar/repo/foo:v1.0.0",
            ),
            (
                source("source.com", "repo", "", "sha256:123", t),
                "source.com/repo@sha256:123",
                "target.com/repo:123",
            ),
            (
                source(
                    "source.com",
                    "nested/sourcerepo",
                    "v1.0.0",
                    "",
                    target("", "targetrepo"),
                ),
                "source.com/nested/sourcerepo:v1.0.0",
                "targetrepo/sourcerepo:v1.0.0",
            ),
            (
                source(
                    "source.com",
                    "really/nested/sourcerepo",
                    "v1.0.0",
                    "",
                    target("", "targetrepo"),
                ),
                "source.com/really/nested/sourcerepo:v1.0.0",
                "targetrepo/sourcerepo:v1.0.0",
            ),
            (
                source(
                    "quay.io",
                    "coreos/prometheus-operator",
                    "v0.40.0",
                    "",
                    target("ghcr.io", "myorg"),
                ),
                "quay.io/coreos/prometheus-operator:v0.40.0",
                "ghcr.io/myorg/prometheus-operator:v0.40.0",
            ),
            (
                source("", "library/busybox", "1.36", "", target("docker.io", "me")),
                "library/busybox:1.36",
                "docker.io/me/busybox:1.36",
            ),
            (
                source("", "a/b", "t", "sha256:x", target("quay.io", "")),
                "a/b:t",
                "quay.io/b:t",
            ),
            (
                source(
                    "",
                    "some/repo",
                    "",
                    "sha256:abc123",
                    target("MY_HOST", "MY_REPO"),
                ),
                "some/repo@sha256:abc123",
                "MY_HOST/MY_REPO/some/repo:abc123",
            ),
        ];
        for (s, image, target_image) in cases {
            assert_eq!(s.image(), image);
            assert_eq!(s.target_image(), target_image, "{s:?}");
        }
    }

    /// C6: `TestGetSourceHostFromRepository`.
    #[test]
    fn source_hosts_guessed_from_the_repository() {
        assert_eq!(source_host_of("coreos"), "quay.io");
        assert_eq!(source_host_of("open-policy-agent"), "quay.io");
        assert_eq!(source_host_of("kubernetes-ingress-controller"), "quay.io");
        assert_eq!(source_host_of("twistlock"), "registry.twistlock.com");
        assert_eq!(source_host_of("nginx"), "");
    }

    /// C8: `TestManifest_Update`, its five cases.
    #[test]
    fn update_as_sinkers_test_says() {
        let base = target("mycr.com", "");
        let images = |s: &str| vec![s.to_string()];
        let with = |t: Target, sources: Vec<Source>| SinkerFile { target: t, sources };
        let src = |repository: &str, tag: &str, t: Target| Source {
            repository: repository.into(),
            tag: tag.into(),
            target: t,
            ..Source::default()
        };
        let cases = [
            (
                with(base.clone(), vec![]),
                "mycr.com/foo/bar:1.2.3",
                with(
                    base.clone(),
                    vec![src("foo/bar", "1.2.3", Target::default())],
                ),
            ),
            (
                with(target("mycr.com", "foo"), vec![]),
                "mycr.com/foo/bar:1.2.3",
                with(
                    target("mycr.com", "foo"),
                    vec![src("bar", "1.2.3", Target::default())],
                ),
            ),
            (
                with(
                    base.clone(),
                    vec![src("foo/bar", "1.0.0", target("myothercr.com", ""))],
                ),
                "myothercr.com/foo/bar:1.2.3",
                with(
                    base.clone(),
                    vec![src("foo/bar", "1.2.3", target("myothercr.com", ""))],
                ),
            ),
            (
                with(
                    target("mycr.com", "foo"),
                    vec![src("bar", "1.0.0", target("mycr.com", "foo"))],
                ),
                "mycr.com/foo/bar:1.2.3",
                with(
                    target("mycr.com", "foo"),
                    vec![src("bar", "1.2.3", Target::default())],
                ),
            ),
            (
                with(
                    base.clone(),
                    vec![src("bar", "1.0.0", target("mycr.com", "foo"))],
                ),
                "mycr.com/foo/bar:1.2.3",
                with(base, vec![src("bar", "1.2.3", target("mycr.com", "foo"))]),
            ),
        ];
        for (existing, image, expected) in cases {
            assert_eq!(existing.update(&images(image)), expected, "{image}");
        }
    }

    /// TESTCASES.md §F4 (derived): new images, and matches through the
    /// flattened target.
    #[test]
    fn update_guesses_hosts_and_matches_flattened_targets() {
        let hub = SinkerFile {
            target: target("", "plexsystems"),
            sources: vec![],
        };
        let got = hub.update(&["coreos/foo:v1".into(), "nginx:1.25".into()]);
        assert_eq!(got.sources[0].host, "quay.io");
        assert_eq!(got.sources[1].repository, "nginx");
        let quirk = SinkerFile {
            target: target("mycompany.com", "myrepo"),
            sources: vec![],
        };
        assert_eq!(
            quirk.update(&["foo/myrepo-x:v1".into()]).sources[0].repository,
            "foo/-x"
        );
        let listed = SinkerFile {
            target: target("", "plexsystems"),
            sources: vec![source(
                "host.com",
                "nested/sinker-test",
                "v1.0.0",
                "",
                Target::default(),
            )],
        }
        .inherit();
        let got = listed.update(&["plexsystems/sinker-test:v2.0.0".into()]);
        assert_eq!(
            (
                got.sources[0].host.as_str(),
                got.sources[0].repository.as_str(),
                got.sources[0].tag.as_str()
            ),
            ("host.com", "nested/sinker-test", "v2.0.0")
        );
    }

    #[test]
    fn dedupe_and_locations_as_sinker_has_them() {
        let images: Vec<String> = ["a:1", "A:1", "", "b:2", "a:1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(dedupe(&images), ["a:1", "b:2"]);
        assert_eq!(manifest_location(""), std::path::Path::new(".images.yaml"));
        assert_eq!(
            manifest_location("example"),
            std::path::Path::new("example/.images.yaml")
        );
        assert_eq!(
            manifest_location("test/update/original.yaml"),
            std::path::Path::new("test/update/original.yaml")
        );
        assert_eq!(
            manifest_location("dir.yml.d"),
            std::path::Path::new("dir.yml.d")
        );
    }
}
