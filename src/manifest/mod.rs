//! Loading and validating promoter manifests (plain files and thin trees).
pub mod model;
