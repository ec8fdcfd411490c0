//! The fixture most end-to-end tests start from: a source registry and a
//! destination registry (real ones), a recording proxy in front of each,
//! images pushed to the source, and a working directory for manifests,
//! options and runs of the binary.
//!
//! ```ignore
//! let Some(w) = World::builder().start().await else { return };
//! w.push("stage/app", &image, &["1.0"]).await;
//! let m = w.manifest("m.yaml", &images_yaml(&[("app", image.digest(), &["1.0"])]));
//! let out = w.run_async(&["run", "--manifest", &m, "--confirm"]).await;
//! ```
//!
//! A test file's own fixture is a `World<ITS_IMAGES>` ([`World::holding`])
//! with an `impl` of its own.

use std::ops::Deref;

use promoter::reference::Digest;
use promoter::registry::remote::{CredentialStore, RemoteRegistry};
use serde_json::Value;

use super::cli::Workdir;
use super::images::{push, Flavor, Platform, TestImage};
use super::proxy::Proxy;
use super::registry::{Auth, Config, TestRegistry};

/// How a [`World`] is set up.
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct WorldBuilder {
    src: Config,
    dst: Config,
    /// The source is a path of the destination's registry.
    same_registry: bool,
}

impl WorldBuilder {
    /// The source registry's configuration (plain by default).
    pub fn source(mut self, config: Config) -> WorldBuilder {
        self.src = config;
        self
    }

    /// The destination registry's configuration (plain by default).
    pub fn destination(mut self, config: Config) -> WorldBuilder {
        self.dst = config;
        self
    }

    /// One registry for both: the source is another path of the
    /// destination's registry (so that blobs can be mounted).
    pub fn same_registry(mut self) -> WorldBuilder {
        self.same_registry = true;
        self
    }

    /// Start the registries and proxies; `None` (after a skip line) when
    /// the registry is not installed, except under `CI=true`.
    pub async fn start(self) -> Option<World> {
        let dst = TestRegistry::start(self.dst).await?;
        let src = if self.same_registry {
            None
        } else {
            Some(TestRegistry::start(self.src).await?)
        };
        let source = src.as_ref().unwrap_or(&dst);
        let src_proxy = Proxy::start(&source.host()).await;
        let dst_proxy = Proxy::start(&dst.host()).await;
        // Straight to the registry, with its own credentials when it wants some.
        let credentials = match source.config.auth {
            Auth::None => CredentialStore::anonymous(),
            _ => CredentialStore::from_files([source.write_docker_config(None)]).unwrap(),
        };
        let src_client = source.remote(credentials);
        let world = World {
            src_client,
            src_proxy,
            dst_proxy,
            work: Workdir::new(),
            src,
            dst,
            images: (),
        };
        world.set_options("{}");
        Some(world)
    }
}

/// A source and a destination registry, each behind a recording proxy, a
/// working directory ([`Workdir`], which a `World` derefs to), and what the
/// test put there (`images`).
pub struct World<T = ()> {
    /// Pushes to the source, not through its proxy.
    src_client: RemoteRegistry,
    pub src_proxy: Proxy,
    pub dst_proxy: Proxy,
    work: Workdir,
    src: Option<TestRegistry>,
    pub dst: TestRegistry,
    pub images: T,
}

impl<T> Deref for World<T> {
    type Target = Workdir;
    fn deref(&self) -> &Workdir {
        &self.work
    }
}

impl World {
    /// Two plain registries, unless told otherwise.
    pub fn builder() -> WorldBuilder {
        WorldBuilder::default()
    }
}

impl<T> World<T> {
    /// The same world, remembering `images` (what the test pushed).
    pub fn holding<U>(self, images: U) -> World<U> {
        World {
            src_client: self.src_client,
            src_proxy: self.src_proxy,
            dst_proxy: self.dst_proxy,
            work: self.work,
            src: self.src,
            dst: self.dst,
            images,
        }
    }

    /// The source registry (the destination's, with
    /// [`WorldBuilder::same_registry`]).
    pub fn src(&self) -> &TestRegistry {
        self.src.as_ref().unwrap_or(&self.dst)
    }

    /// The source host manifests name: its proxy; within one registry, the
    /// destination's proxy, or the two would be different endpoints.
    pub fn src_host(&self) -> String {
        match self.src {
            Some(_) => self.src_proxy.host(),
            None => self.dst_proxy.host(),
        }
    }

    /// The destination host manifests name: its proxy.
    pub fn dst_host(&self) -> String {
        self.dst_proxy.host()
    }

    /// Push `image` to `repo` of the source (a full path: `stage/app`),
    /// tagged with each of `tags` (untagged when there are none).
    pub async fn push(&self, repo: &str, image: &TestImage, tags: &[&str]) {
        push_tagged(&self.src_client, repo, image, tags).await;
    }

    /// Write a manifest `name` promoting `images` (the `images:` entries,
    /// see [`images_yaml`]) from `SOURCE/stage` to `DESTINATION/prod`, both
    /// through the proxies. Answers `name`.
    pub fn manifest(&self, name: &str, images: &str) -> String {
        self.manifest_between(name, "stage", "prod", images)
    }

    /// [`World::manifest`] between other paths of the two registries.
    pub fn manifest_between(
        &self,
        name: &str,
        src_path: &str,
        dst_path: &str,
        images: &str,
    ) -> String {
        let text = manifest_yaml(
            &format!("{}/{src_path}", self.src_host()),
            &format!("{}/{dst_path}", self.dst_host()),
            images,
        );
        self.write(name, text);
        name.to_string()
    }

    /// Write `options.json` (for `--registry-config`): a 5 s retry deadline
    /// so that failing runs fail fast, with the `extra` defaults merged in.
    pub fn set_options(&self, extra: &str) {
        self.write("options.json", registry_options(extra));
    }

    /// Delete the data of `digest` (a blob, or a manifest: Distribution
    /// keeps both as blobs) from the destination registry's storage, as a
    /// failing disk or a careless clean-up would: the repositories still
    /// link it, the registry answers 404 for it.
    pub fn lose_from_destination(&self, digest: &Digest) {
        let hex = digest.hex();
        let data = self
            .dst
            .dir
            .path()
            .join("storage/docker/registry/v2/blobs")
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
            .join("data");
        std::fs::remove_file(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
    }

    /// The writes (POST, PUT, PATCH, DELETE) the destination's proxy saw.
    pub fn destination_writes(&self) -> Vec<String> {
        self.dst_proxy
            .log()
            .into_iter()
            .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Both proxies' request logs, for assertion messages.
    pub fn dumps(&self) -> String {
        format!(
            "--- source proxy:\n{}--- destination proxy:\n{}",
            self.src_proxy.dump(),
            self.dst_proxy.dump()
        )
    }
}

/// Push `image` to `repo` through `client`, tagged with each of `tags`
/// (untagged when there are none).
pub async fn push_tagged(client: &RemoteRegistry, repo: &str, image: &TestImage, tags: &[&str]) {
    push(client, repo, image, tags.first().copied())
        .await
        .unwrap_or_else(|e| panic!("push {repo}@{}: {e}", image.digest()));
    for tag in tags.iter().skip(1) {
        push(client, repo, image, Some(tag))
            .await
            .unwrap_or_else(|e| panic!("push {repo}:{tag}: {e}"));
    }
}

/// `--registry-config` JSON: a 5 s retry deadline, `extra` defaults merged in.
pub fn registry_options(extra: &str) -> String {
    let mut defaults: Value = serde_json::from_str(extra).unwrap();
    defaults["retry_deadline_secs"] = 5.into();
    serde_json::json!({ "defaults": defaults }).to_string()
}

/// A plain manifest: `src` (`HOST/PATH`, `oci:DIR`) the source registry,
/// `dst` the destination, then the `images:` entries.
pub fn manifest_yaml(src: &str, dst: &str, images: &str) -> String {
    format!("registries:\n- name: {src}\n  src: true\n- name: {dst}\nimages:\n{images}")
}

/// The `images:` entries of a manifest: (repository, digest, tags), one
/// `- name:` block for each run of entries of the same repository.
pub fn images_yaml(entries: &[(&str, &Digest, &[&str])]) -> String {
    let mut yaml = String::new();
    let mut last: Option<&str> = None;
    for (repo, digest, tags) in entries {
        if last != Some(*repo) {
            yaml.push_str(&format!("- name: {repo}\n  dmap:\n"));
            last = Some(repo);
        }
        let tags: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
        yaml.push_str(&format!("    \"{digest}\": [{}]\n", tags.join(", ")));
    }
    yaml
}

/// The images of the end-to-end scenario both destination kinds run (see
/// [`scenario_images_yaml`]), and one the manifests never name.
pub struct Scenario {
    /// An index for linux/amd64 and linux/arm64.
    pub index: TestImage,
    pub image: TestImage,
    pub tagless: TestImage,
    /// Not wanted: the target of refused tag moves.
    pub other: TestImage,
}

impl Scenario {
    /// Seeded `seed` to `seed + 3`, in this order; `sizes` are the layer
    /// sizes of the index's children, `image`, `tagless` and `other`.
    pub fn new(seed: u64, flavor: Flavor, sizes: [usize; 4]) -> Scenario {
        let platforms = [Platform::linux("amd64"), Platform::linux("arm64")];
        Scenario {
            index: TestImage::multi_arch(seed, flavor, &platforms, sizes[0]),
            image: TestImage::single_layer(seed + 1, sizes[1]),
            tagless: TestImage::single_layer(seed + 2, sizes[2]),
            other: TestImage::single_layer(seed + 3, sizes[3]),
        }
    }

    /// [`scenario_images_yaml`] of these images.
    pub fn images_yaml(&self) -> String {
        scenario_images_yaml(
            self.index.digest(),
            self.image.digest(),
            self.tagless.digest(),
        )
    }
}

/// The images.yaml body of the end-to-end scenario both destination kinds
/// run: `hello` (an index) tagged 1.0, `tools/echo` tagged v1 and latest
/// plus a tagless digest, and `gone`, whose digest exists nowhere (lost).
pub fn scenario_images_yaml(index: &Digest, image: &Digest, tagless: &Digest) -> String {
    let lost = Digest::sha256_of(b"nowhere");
    images_yaml(&[
        ("hello", index, &["1.0"]),
        ("tools/echo", image, &["v1", "latest"]),
        ("tools/echo", tagless, &[]),
        ("gone", &lost, &["1.0"]),
    ])
}
