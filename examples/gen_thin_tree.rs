//! Generate a thin manifest tree shaped like registry.k8s.io's promotion tree,
//! for benchmarking `promoter run --parse-only`.
//!
//! ```text
//! cargo run --release --example gen_thin_tree -- OUT_DIR [SCALE]
//! ```
//!
//! SCALE 1 (the default) gives about 75 subprojects, 20,000 digests, 2.2 MB
//! of YAML and 22 destinations per manifest, about 720,000 (digest, tag,
//! destination) edges. The output depends only on SCALE: same input, same
//! bytes, so figures taken on different days compare.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const SUBPROJECTS: f64 = 75.0;
const DIGESTS: f64 = 20_000.0;
const IMAGES: f64 = 450.0;

/// 3 GCR regions + 19 Artifact Registry regions = 22 destinations.
const GCR: [&str; 3] = ["us", "eu", "asia"];
const AR: [&str; 19] = [
    "asia-east1",
    "asia-south1",
    "asia-northeast1",
    "asia-northeast2",
    "australia-southeast1",
    "europe-north1",
    "europe-southwest1",
    "europe-west1",
    "europe-west2",
    "europe-west4",
    "europe-west8",
    "europe-west9",
    "southamerica-west1",
    "us-central1",
    "us-east1",
    "us-east4",
    "us-east5",
    "us-south1",
    "us-west1",
];

/// splitmix64: tiny, fast, and stable across toolchains and crate versions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn digest(&mut self) -> String {
        let mut hex = String::with_capacity(64);
        for _ in 0..4 {
            let _ = write!(hex, "{:016x}", self.next());
        }
        hex
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(out) = args.get(1) else {
        eprintln!("usage: gen_thin_tree OUT_DIR [SCALE]");
        std::process::exit(2);
    };
    let scale: f64 = match args.get(2).map(|s| s.parse()) {
        None => 1.0,
        Some(Ok(s)) if s > 0.0 => s,
        Some(_) => {
            eprintln!("SCALE must be a positive number");
            std::process::exit(2);
        }
    };
    let stats = generate(Path::new(out), scale).unwrap_or_else(|err| {
        eprintln!("error: cannot write the tree: {err}");
        std::process::exit(1);
    });
    println!(
        "{}: {} manifests, {} images, {} digests, {} tag edges x 22 destinations = {} edges, {} bytes of YAML",
        out,
        stats.manifests,
        stats.images,
        stats.digests,
        stats.tags,
        stats.tags * 22,
        stats.bytes
    );
}

#[derive(Default)]
struct Stats {
    manifests: usize,
    images: usize,
    digests: usize,
    tags: usize,
    bytes: usize,
}

fn generate(out: &Path, scale: f64) -> std::io::Result<Stats> {
    let mut rng = Rng(0x5eed);
    let subprojects = ((SUBPROJECTS * scale).round() as usize).max(1);
    let total_digests = ((DIGESTS * scale).round() as usize).max(subprojects);
    let total_images = ((IMAGES * scale).round() as usize).max(subprojects);
    // Uneven sizes, as in the real tree: a few large subprojects, many small.
    let weights: Vec<u64> = (0..subprojects).map(|_| 1 + rng.below(8).pow(2)).collect();
    let weight_sum: u64 = weights.iter().sum();
    let share = |total: usize, w: u64| ((total as u64 * w) / weight_sum).max(1) as usize;

    let mut stats = Stats::default();
    for (i, &w) in weights.iter().enumerate() {
        let sub = format!("k8s-staging-sub{i:02}");
        // A few subprojects promote to the registry root, as the core images do.
        let rooted = i % 10 == 0;
        let images = share(total_images, w);
        let digests = share(total_digests, w);
        let manifest = registries(&sub, rooted);
        let (images_yaml, counts) = images_file(&mut rng, i, images, digests);
        write(
            &out.join("manifests")
                .join(&sub)
                .join("promoter-manifest.yaml"),
            &manifest,
        )?;
        write(
            &out.join("images").join(&sub).join("images.yaml"),
            &images_yaml,
        )?;
        stats.manifests += 1;
        stats.images += images;
        stats.digests += counts.0;
        stats.tags += counts.1;
        stats.bytes += manifest.len() + images_yaml.len();
    }
    Ok(stats)
}

fn write(path: &PathBuf, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)
}

fn registries(sub: &str, rooted: bool) -> String {
    let suffix = if rooted {
        String::new()
    } else {
        format!("/{}", sub.trim_start_matches("k8s-staging-"))
    };
    let mut text = format!(
        "# google group for gcr.io/{sub} is {sub}@kubernetes.io\nregistries:\n- name: gcr.io/{sub}\n  src: true\n"
    );
    for region in GCR {
        let _ = write!(
            text,
            "- name: {region}.gcr.io/k8s-artifacts-prod{suffix}\n  service-account: k8s-infra-gcr-promoter@k8s-artifacts-prod.iam.gserviceaccount.com\n"
        );
    }
    for region in AR {
        let _ = write!(
            text,
            "- name: {region}-docker.pkg.dev/k8s-artifacts-prod/images{suffix}\n  service-account: k8s-infra-gcr-promoter@k8s-artifacts-prod.iam.gserviceaccount.com\n"
        );
    }
    text
}

/// One images.yaml: `images` images sharing `digests` digests. Returns the
/// text and (digests, tag entries).
fn images_file(
    rng: &mut Rng,
    sub: usize,
    images: usize,
    digests: usize,
) -> (String, (usize, usize)) {
    let mut text = String::from("# Generated by gen_thin_tree; shaped like registry.k8s.io.\n");
    let mut tags_total = 0;
    let mut written = 0;
    for image in 0..images {
        // Names are unique across the tree so rooted subprojects never clash.
        let _ = write!(text, "- name: sub{sub:02}-image{image:02}\n  dmap:\n");
        let count = digests / images + usize::from(image < digests % images);
        for k in 0..count {
            let digest = rng.digest();
            // 5% none, 35% one, 50% two, 10% three: 1.65 tags per digest.
            let ntags = match rng.below(100) {
                0..=4 => 0,
                5..=39 => 1,
                40..=89 => 2,
                _ => 3,
            };
            let version = format!("v1.{}.{}", k / 10, k % 10);
            let tags: Vec<String> = (0..ntags)
                .map(|j| match j {
                    0 => format!("\"{version}\""),
                    1 => format!("\"{version}-amd64\""),
                    _ => format!("\"1.{}\"", k),
                })
                .collect();
            tags_total += ntags;
            written += 1;
            let _ = writeln!(text, "    \"sha256:{digest}\": [{}]", tags.join(", "));
        }
    }
    (text, (written, tags_total))
}
