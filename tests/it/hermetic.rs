//! The harness's own promise (`support::hermetic`), through the binary: a
//! run finds no credentials but those a test hands it, and a variable a
//! test sets on purpose wins over the clean environment, whatever the
//! machine running the suite keeps in its own `HOME`.

use crate::support::cli::Workdir;
use crate::support::images::TestImage;
use crate::support::registry::{Auth, Config};
use crate::support::world::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_sees_only_the_environment_its_test_sets() {
    let Some(w) = World::builder()
        .source(Config::with_auth(Auth::Htpasswd))
        .start()
        .await
    else {
        return;
    };
    w.push("stage/app", &TestImage::single_layer(1, 100), &["1.0"])
        .await;
    let root = format!("{}/stage", w.src().host());
    let snapshot = ["run", "--snapshot", root.as_str()];

    // Nothing set: no credentials anywhere the binary looks by default.
    let out = w.run_async(&snapshot).await;
    assert_eq!(out.code, 4, "a registry that refuses: {}", out.all());
    assert!(
        out.stderr.contains("authentication required"),
        "{}",
        out.all()
    );

    // DOCKER_CONFIG set on purpose: its config.json is found.
    let config = w.src().write_docker_config(None);
    let out = w
        .promoter()
        .args(snapshot)
        .env("DOCKER_CONFIG", config.parent().unwrap())
        .run_async()
        .await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("- name: app"), "{}", out.all());

    // A broken ~/.docker/config.json, as on a developer's machine: it
    // reaches a run only when a test points HOME at it.
    let home = Workdir::new();
    std::fs::create_dir_all(home.path().join(".docker")).unwrap();
    home.write(".docker/config.json", "{not json");
    let out = w
        .promoter()
        .args(snapshot)
        .env("HOME", home.path())
        .env_remove("DOCKER_CONFIG")
        .run_async()
        .await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains(".docker/config.json: not a valid auth file"),
        "{}",
        out.all()
    );
}
