//! Shared test support, compiled once into the `it` test binary: the
//! hermetic environment and the one way to run the binary and skopeo, real
//! registries, a fault-injecting proxy, a deterministic image builder, the
//! source-and-destination fixture, and the destination walks.

pub mod cli;
pub mod hermetic;
pub mod hostile;
pub mod images;
pub mod podman;
pub mod proxy;
pub mod registry;
pub mod skopeo;
pub mod verify;
pub mod world;
