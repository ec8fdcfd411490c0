#![warn(unreachable_pub, missing_docs, clippy::too_many_lines)]
//! `promoter`: declarative container-image promotion.
//!
//! Data flows one way: [`manifest`] (load + validate) -> inventory (read
//! registries through the [`registry::Registry`] trait) -> plan (pure set
//! algebra) -> exec (carry the plan out) -> report.
pub mod config;
pub mod diag;
pub mod exec;
pub mod git;
pub mod hooks;
pub mod inventory;
pub mod limits;
pub mod local_file;
pub mod manifest;
pub mod mirror;
pub mod oci;
pub mod once_map;
pub mod plan;
pub mod promote;
pub mod reference;
pub mod registry;
pub mod report;
pub mod review;
pub mod shutdown;
pub mod snapshot;
mod text;
pub mod verify;
pub mod wants;
pub mod watch;
