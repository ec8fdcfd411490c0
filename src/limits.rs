//! Every limit in one place: how much runs at once, and how much of what
//! others send is read (README's "Safety" lists the second kind).
//!
//! Two kinds of limit stack up:
//!
//! - **Fan-out** (how many tasks a stage starts at once): the executor works
//!   on [`REPOSITORIES_AT_ONCE`] destination repositories of each destination
//!   registry (each registry's own budget, as it has its own pacer), and inside one
//!   manifest on [`TRANSFERS_PER_MANIFEST`] children or blobs; an index's
//!   children fan out again at the same width, so a copy of an index of
//!   indexes may have `16 × 4 × 4` tasks ready. The inventory runs
//!   [`INVENTORY_READS`] repositories at once with [`INVENTORY_READS`]` / 4`
//!   reads each; snapshots read [`SNAPSHOT_REPOSITORIES`] repositories with
//!   [`SNAPSHOT_HEADS_PER_REPOSITORY`] tag HEADs each.
//! - **The wire** (what actually goes out): every request to a registry
//!   takes one of its transport's [`REQUESTS_IN_FLIGHT_PER_REGISTRY`]
//!   permits (`max_in_flight` in the registry config), and an optional
//!   requests-per-second budget paces them. Fan-out beyond the permits only
//!   queues; it never adds load on a registry.
//!
//! Memory is bounded by the wire, not the fan-out: a blob is streamed, so a
//! transfer holds one chunk (the verifier holds back at most one more); a
//! manifest is held whole but is capped at [`MANIFEST_BYTES`]. So the peak
//! is about
//! `permits × (chunk + manifest cap)` per registry, whatever the fan-out.

/// Destination repositories the executor works on at once in each
/// destination registry (also the pipelining width of a promotion).
pub const REPOSITORIES_AT_ONCE: usize = 16;

/// Child manifests or blobs of one manifest transferred at once.
pub const TRANSFERS_PER_MANIFEST: usize = 4;

/// Reads the inventory runs at once across all registries; each
/// destination repository gets a quarter of them.
pub const INVENTORY_READS: usize = 32;

/// Repositories a snapshot reads at once.
pub const SNAPSHOT_REPOSITORIES: usize = 32;

/// Tag HEADs a snapshot sends at once within one repository.
pub const SNAPSHOT_HEADS_PER_REPOSITORY: usize = 8;

/// Requests in flight to one registry at once, unless its `max_in_flight`
/// says otherwise.
pub const REQUESTS_IN_FLIGHT_PER_REGISTRY: usize = 16;

/// Largest manifest read or written, registry or `oci:` tree alike (the
/// distribution spec asks registries to accept at least 4 MiB, and
/// docker-registry refuses more): one limit, so nothing is written that
/// would be refused when read back.
pub const MANIFEST_BYTES: usize = 4 << 20;

/// Largest `index.json` of an `oci:` tree read (about 100,000 tags).
pub const INDEX_JSON_BYTES: u64 = 32 << 20;

/// Largest page of a listing (`_catalog`, `tags/list`).
pub const LISTING_PAGE_BYTES: usize = 16 << 20;

/// Most names one listing may return over all its pages (a repository's
/// tags, or the repositories under a path).
pub const LISTED_NAMES: usize = 500_000;

/// Most bytes of pages one listing may read in all: with
/// [`LISTED_NAMES`], what bounds the memory an endless `Link: rel="next"`
/// chain can take.
pub const LISTING_BYTES: usize = 64 << 20;

/// Most pages one listing follows.
pub const LISTING_PAGES: usize = 100_000;

/// The slowest a body may arrive or be taken, on average over every
/// [`PACE_WINDOW`] (`min_bytes_per_second` in the registry options): a body
/// trickled below it fails, so no body holds a run longer than its size
/// allows (a 1 GiB layer at the floor: about 18 hours).
pub const MIN_BYTES_PER_SECOND: u64 = 16 << 10;

/// The window [`MIN_BYTES_PER_SECOND`] is averaged over; also the longest
/// total silence tolerated in a body.
pub const PACE_WINDOW: std::time::Duration = std::time::Duration::from_secs(30);

/// The longest a request may wait for its answer's headers (a body being
/// sent adds its size at [`MIN_BYTES_PER_SECOND`]): `request_timeout_secs`
/// in the registry options.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Most referrers one image may have (signatures, attestations, SBOMs:
/// real images have a handful); a source listing more fails the image.
pub const REFERRERS_PER_IMAGE: usize = 1_000;

/// Deepest nesting of indexes (an index of indexes of ...) copied or
/// walked; real images nest one or two levels.
pub const INDEX_DEPTH: usize = 8;

/// Most distinct manifests one walk of a manifest graph reads (an image,
/// its index children, their children...): real multi-platform images have
/// tens. Bounds the requests and writes a hostile index can cause.
pub const GRAPH_MANIFESTS: usize = 10_000;

/// Deepest directory a walk of a local tree lists ([`crate::local_file::walk`]:
/// thin manifest trees, `import kubernetes` directories); real trees nest a
/// few levels, and the bound ends a walk through a pathological one.
pub const WALK_DEPTH: usize = 32;

/// Most directory entries one walk of a local tree looks at; a repository
/// of manifests has a few thousand. Keeps `promoter import kubernetes /`
/// from running for hours, and a crafted tree from stalling CI.
pub const WALK_ENTRIES: usize = 100_000;

/// Disk a run may use to hold source blobs that go to several destination
/// registries (read once, written to each). Past it, a blob is streamed
/// from the source for each destination, as without fan-out.
pub const SPOOL_BYTES: u64 = 4 << 30;

/// Memory a run may use to hold small source blobs that go to several
/// destination registries (read once, uploaded to each as they arrive);
/// past it, they go to the spool file like larger ones. A blob is held only
/// until its last destination has it, so a run holds far less than this
/// in practice (bench/run.sh e: peak RSS near 120 MiB with a 1 GiB bound,
/// as with 64 MiB); the bound is set
/// where a burst still stays in memory, because a blob that spills to the
/// file costs a write and a read per byte (about 15% of the fan-out's
/// client CPU at 64 MiB, bench/run.sh e).
pub const SPOOL_MEMORY_BYTES: u64 = 256 << 20;

/// Largest blob held for fan-out in memory rather than in a spool file.
pub const SPOOL_IN_MEMORY_BLOB: u64 = 8 << 20;

/// Attempts of a request whose connection is refused (nothing listens):
/// a registry restarting is back within a second; one that is down, or a
/// wrong port, fails at once instead of for the whole retry deadline.
pub const REFUSED_ATTEMPTS: u32 = 3;

/// Largest registry options file read (`--registry-config`).
pub const OPTIONS_FILE_BYTES: u64 = 1 << 20;

/// The largest manifest or intent file read, in the working copy or at a
/// git revision. The whole registry.k8s.io tree is 2.2 MB of YAML across
/// 150 files; a single file near this size is a mistake or an attack.
pub const MANIFEST_FILE_BYTES: u64 = 16 << 20;

/// The largest registry key file read (a service-account JSON key is a
/// few KiB).
pub const KEY_FILE_BYTES: u64 = 1 << 20;

/// Most characters of text from elsewhere (a registry's error message, a
/// tag or repository name it lists, a media type) quoted in a message or
/// log line; the rest is cut and counted (`text::cut`), so a
/// hostile name cannot flood a log or hide what follows it.
pub const QUOTED_TEXT_CHARS: usize = 200;
