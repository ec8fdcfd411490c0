//! `promoter watch` through the binary on real registries: a manifest
//! changed between cycles is promoted by the next one, /metrics and
//! /healthz answer, and SIGTERM ends it cleanly (exit 0).

use std::time::{Duration, Instant};

use promoter::reference::{ManifestRef, Tag};
use promoter::registry::remote::CredentialStore;
use promoter::registry::Registry;

use crate::support::images::{At, TestImage};
use crate::support::world::{images_yaml, World};

/// Wait until the destination holds `repo:tag` (through `check`), or fail.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_promotes_each_change_serves_metrics_and_stops_on_sigterm() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let first = TestImage::single_layer(2001, 256);
    let second = TestImage::single_layer(2002, 256);
    w.push("stage/first", &first, &["1.0"]).await;
    w.push("stage/second", &second, &["1.0"]).await;
    w.manifest(
        "m.yaml",
        &images_yaml(&[("first", first.digest(), &["1.0"])]),
    );
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let mut child = w
        .promoter()
        .args([
            "watch",
            "--manifest",
            "m.yaml",
            "--interval",
            "300ms",
            "--listen",
            &listen,
            "--registry-config",
            "options.json",
            "-q",
        ])
        .stderr(std::process::Stdio::null())
        .spawn();

    let dst = w.dst.remote(CredentialStore::anonymous());
    let holds = |repo: &'static str| {
        let dst = &dst;
        async move || {
            matches!(
                dst.head_manifest(&dst.at(repo), &ManifestRef::Tag(Tag::parse("1.0").unwrap()))
                    .await,
                Ok(Some(_))
            )
        }
    };
    eventually("the first image promoted", holds("prod/first")).await;
    // The manifest changes between cycles: the next cycle promotes it.
    w.manifest(
        "m.yaml",
        &images_yaml(&[
            ("first", first.digest(), &["1.0"]),
            ("second", second.digest(), &["1.0"]),
        ]),
    );
    eventually("the second image promoted", holds("prod/second")).await;

    let client = reqwest::Client::new();
    let metrics = client
        .get(format!("http://{listen}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    let sample = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    assert!(
        sample("promoter_cycles_total{result=\"ok\"}") >= 2.0,
        "{text}"
    );
    assert!(
        sample("promoter_edges_total{outcome=\"done\"}") >= 4.0,
        "{text}"
    );
    assert!(
        sample("promoter_last_success_timestamp_seconds") > 1.7e9,
        "{text}"
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(
            value.parse::<f64>().is_ok() && name.starts_with("promoter_"),
            "{line}"
        );
    }
    let health = client
        .get(format!("http://{listen}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // SIGTERM: the edges under way finish, then exit 0.
    let pid = child.id().expect("running") as i32;
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("watch ends after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// The manifest path turning into a FIFO between cycles (an attack on a
/// long-running watch): that cycle fails at once, counted, /healthz says
/// so, and the next cycles run on schedule; put back, the watch is healthy
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_swapped_for_a_fifo_fails_its_cycles_and_the_watch_goes_on() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = crate::support::cli::Workdir::new();
    std::os::unix::fs::symlink(repo.join("testdata"), work.path().join("testdata")).unwrap();
    let manifest = std::fs::read_to_string(repo.join("manifests/quickstart.yaml")).unwrap();
    work.write("m.yaml", &manifest);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = work
        .promoter()
        .args([
            "watch",
            "--manifest",
            "m.yaml",
            "--interval",
            "100ms",
            "--listen",
            &listen,
            "-q",
        ])
        .spawn();
    let client = reqwest::Client::new();
    let health = |want: u16| {
        let (client, listen) = (&client, &listen);
        async move || {
            client
                .get(format!("http://{listen}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == want)
        }
    };
    eventually("a first healthy cycle", health(200)).await;
    std::fs::remove_file(work.path().join("m.yaml")).unwrap();
    let fifo = std::ffi::CString::new(work.path().join("m.yaml").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid C string path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    eventually("a cycle failing on the FIFO", health(503)).await;
    let metrics = client
        .get(format!("http://{listen}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("promoter_cycles_total{result=\"failed\"} 0\n"),
        "{metrics}"
    );
    std::fs::remove_file(work.path().join("m.yaml")).unwrap();
    work.write("m.yaml", &manifest);
    eventually("healthy again once the file is back", health(200)).await;
    let pid = child.id().expect("running") as i32;
    // SAFETY: kill(2) of the child this test started.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("watch ends after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}
