//! Mirroring by tag, the declarative way: an intent (tags chosen by
//! selectors, see [`crate::manifest::intent`]) is resolved against the
//! source into an ordinary, digest-pinned CIP manifest that is reviewed and
//! promoted like any other.

pub mod select;
