//! The integration suite: one test binary, one module per area, and the
//! shared harness (`tests/support`) compiled once for all of them.
//!
//! Every process a test starts (the `promoter` binary, skopeo, the registry)
//! runs in a clean environment: see `support::hermetic`. Run one area with
//! `cargo test --test it faults::`, one test with its full name.

// Kept at `tests/support`: the examples include `images.rs` from there.
#[path = "../support/mod.rs"]
mod support;

mod architecture;
mod cip;
mod clients;
mod crash;
mod deploy;
mod exit_codes;
mod fast_paths;
mod faults;
mod fuzz_regressions;
mod hermetic;
mod hostile;
mod manifest_golden;
mod mirror;
mod operations;
mod presubmit;
mod promote_layout;
mod promote_registry;
mod quickstart;
mod quota;
mod readme;
mod registry_contract;
mod remote_auth;
mod remote_wire;
mod secrets;
mod seed_tools;
mod seeds;
mod snapshot;
mod supply_chain;
mod verify;
mod watch;
