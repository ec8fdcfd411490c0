//! Shared test support: real registries, a fault-injecting proxy, and a
//! deterministic image builder. Each test binary uses a subset.
#![allow(dead_code)]

pub mod cli;
pub mod images;
pub mod proxy;
pub mod registry;
pub mod verify;
