//! The walk of an image's manifest graph (an index, its children, theirs…)
//! and the bound every walk is held to: how deep indexes nest
//! ([`INDEX_DEPTH`]) and how many manifests one walk reads
//! ([`GRAPH_MANIFESTS`]). A hostile source can nest indexes without end or
//! list children without end; whoever walks (verify, snapshots, the
//! layout's index.json, the executor's copy) stops at the same place, with
//! the same message.
//!
//! Two ways to walk, one count:
//!
//! - a sequential walker pulls nodes (a [`GraphWalk`] is an iterator): breadth first,
//!   each digest once, and queues the children it descends into
//!   ([`GraphWalk::descend`]);
//! - a recursive, concurrent walker (the executor copies an index's
//!   children several at once, each before its parent) carries a
//!   [`GraphStep`] down its recursion and enters each node through it; all
//!   its branches count on the one walk, so the bound is the walk's, not a
//!   branch's.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::limits::{GRAPH_MANIFESTS, INDEX_DEPTH};
use crate::reference::{Digest, Repository};

/// A walk that went past its bound. Backends and callers turn it into
/// their own errors (`RegistryError::Limit`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GraphError {
    /// Indexes nest more than [`INDEX_DEPTH`] levels below the root.
    #[error("{what}: {}", self.message())]
    TooDeep {
        /// The manifest that would have been read (`repository@digest`).
        what: String,
    },
    /// The walk would read more than [`GRAPH_MANIFESTS`] manifests.
    #[error("{what}: {}", self.message())]
    TooMany {
        /// The manifest that would have been read (`repository@digest`).
        what: String,
    },
}

impl GraphError {
    /// The manifest the walk stopped at.
    pub(crate) fn what(&self) -> &str {
        match self {
            GraphError::TooDeep { what } | GraphError::TooMany { what } => what,
        }
    }

    /// Which bound was reached, for people.
    pub(crate) fn message(&self) -> String {
        let bound = match self {
            GraphError::TooDeep { .. } => {
                format!("indexes nest more than {INDEX_DEPTH} levels deep")
            }
            GraphError::TooMany { .. } => {
                format!("the image references more than {GRAPH_MANIFESTS} manifests")
            }
        };
        format!("{bound}; not walking further (a bound against hostile sources)")
    }
}

/// The one check before a node is read: it is `depth` indexes below the
/// root and the `count`th manifest of its walk.
fn check_graph(
    what: impl FnOnce() -> String,
    depth: usize,
    count: usize,
) -> Result<(), GraphError> {
    if depth > INDEX_DEPTH {
        Err(GraphError::TooDeep { what: what() })
    } else if count > GRAPH_MANIFESTS {
        Err(GraphError::TooMany { what: what() })
    } else {
        Ok(())
    }
}

/// A manifest a walk reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GraphNode<T = ()> {
    /// Its digest.
    pub(crate) digest: Digest,
    /// How many indexes lie between it and the root it was reached from.
    pub(crate) depth: usize,
    /// What the walker carries along with it (the layout, its media type).
    pub(crate) data: T,
}

/// One walk of the manifest graph of one repository, from its roots.
#[derive(Debug)]
pub(crate) struct GraphWalk<T = ()> {
    repo: Repository,
    /// Manifests entered so far, by every branch of the walk.
    entered: AtomicUsize,
    pending: VecDeque<GraphNode<T>>,
    seen: BTreeSet<Digest>,
}

impl<T> GraphWalk<T> {
    /// A walk of `repo` from `roots` (each at depth 0), for a sequential
    /// walker.
    pub(crate) fn new(
        repo: &Repository,
        roots: impl IntoIterator<Item = (Digest, T)>,
    ) -> GraphWalk<T> {
        GraphWalk {
            repo: repo.clone(),
            entered: AtomicUsize::new(0),
            pending: roots
                .into_iter()
                .map(|(digest, data)| GraphNode {
                    digest,
                    depth: 0,
                    data,
                })
                .collect(),
            seen: BTreeSet::new(),
        }
    }

    /// Queue the `children` of `parent` the walker descends into.
    pub(crate) fn descend(
        &mut self,
        parent: &GraphNode<T>,
        children: impl IntoIterator<Item = (Digest, T)>,
    ) {
        let depth = parent.depth + 1;
        self.pending
            .extend(children.into_iter().map(|(digest, data)| GraphNode {
                digest,
                depth,
                data,
            }));
    }

    /// Count `digest` as read, `depth` indexes below a root, and check the
    /// bound: callable from every branch of a walk at once.
    fn enter(&self, digest: &Digest, depth: usize) -> Result<(), GraphError> {
        let count = self.entered.fetch_add(1, Ordering::Relaxed) + 1;
        check_graph(|| format!("{}@{digest}", self.repo), depth, count)
    }
}

/// The manifests to read, breadth first, each digest once; an `Err` when
/// reading the next would pass the walk's bound (the walker stops there).
/// Pulled with `while let Some(node) = walk.next()`, so that the walker can
/// [`GraphWalk::descend`] between nodes.
impl<T> Iterator for GraphWalk<T> {
    type Item = Result<GraphNode<T>, GraphError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let node = self.pending.pop_front()?;
            if self.seen.insert(node.digest.clone()) {
                return Some(self.enter(&node.digest, node.depth).map(|()| node));
            }
        }
    }
}

impl GraphWalk<()> {
    /// A walk of `repo` for a recursive walker, which starts at
    /// [`GraphWalk::root`] and finds the nodes itself.
    pub(crate) fn recursive(repo: &Repository) -> GraphWalk<()> {
        GraphWalk::new(repo, [])
    }

    /// Where a recursive walker starts: its root, at depth 0.
    pub(crate) fn root(&self) -> GraphStep<'_> {
        GraphStep {
            walk: self,
            depth: 0,
        }
    }
}

/// Where a recursive walker stands: a depth in one walk. Branches walked at
/// once each carry their own step and share the walk's count. A manifest
/// reached twice (a diamond) is entered, and counted, each time: a
/// concurrent walker cannot skip a child another branch is still copying.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GraphStep<'a> {
    walk: &'a GraphWalk<()>,
    depth: usize,
}

impl<'a> GraphStep<'a> {
    /// Count `digest` as read here and check the walk's bound, before it
    /// is read.
    pub(crate) fn enter(&self, digest: &Digest) -> Result<(), GraphError> {
        self.walk.enter(digest, self.depth)
    }

    /// The step for this node's children.
    pub(crate) fn below(self) -> GraphStep<'a> {
        GraphStep {
            depth: self.depth + 1,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Endpoint;

    fn repo() -> Repository {
        Repository::parse(
            &Endpoint::Http {
                host: "r.example".into(),
            },
            "app",
        )
        .unwrap()
    }

    fn d(n: usize) -> Digest {
        Digest::sha256_of(n.to_string().as_bytes())
    }

    #[test]
    fn a_walk_is_breadth_first_and_reads_each_manifest_once() {
        let mut walk = GraphWalk::new(&repo(), [(d(0), "root"), (d(0), "again")]);
        let mut order = Vec::new();
        while let Some(node) = walk.next() {
            let node = node.unwrap();
            order.push((node.digest.clone(), node.depth, node.data));
            if node.digest == d(0) {
                walk.descend(&node, [(d(1), "a"), (d(2), "b")]);
            } else if node.digest == d(1) {
                walk.descend(&node, [(d(3), "c"), (d(2), "b again")]);
            }
        }
        assert_eq!(
            order,
            vec![
                (d(0), 0, "root"),
                (d(1), 1, "a"),
                (d(2), 1, "b"),
                (d(3), 2, "c"),
            ]
        );
    }

    #[test]
    fn a_chain_of_indexes_stops_past_the_depth_bound() {
        let mut walk = GraphWalk::new(&repo(), [(d(0), ())]);
        let mut read = 0;
        let err = loop {
            match walk.next().expect("the chain goes on") {
                Ok(node) => {
                    read += 1;
                    walk.descend(&node, [(d(read), ())]);
                }
                Err(e) => break e,
            }
        };
        assert_eq!(read, INDEX_DEPTH + 1, "the root and INDEX_DEPTH levels");
        assert_eq!(err.what(), format!("{}@{}", repo(), d(read)));
        assert_eq!(
            err.to_string(),
            format!(
                "{}@{}: indexes nest more than {INDEX_DEPTH} levels deep; not walking further \
                 (a bound against hostile sources)",
                repo(),
                d(read)
            )
        );
    }

    #[test]
    fn a_wide_graph_stops_past_the_manifest_bound() {
        let mut walk = GraphWalk::new(&repo(), [(d(0), ())]);
        let root = walk.next().unwrap().unwrap();
        walk.descend(&root, (1..=GRAPH_MANIFESTS).map(|n| (d(n), ())));
        let mut read = 1;
        let err = loop {
            match walk.next().unwrap() {
                Ok(_) => read += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(read, GRAPH_MANIFESTS);
        assert!(matches!(err, GraphError::TooMany { .. }), "{err}");
        assert!(
            err.message()
                .contains(&format!("more than {GRAPH_MANIFESTS} manifests")),
            "{err}"
        );
    }

    #[test]
    fn branches_of_a_recursive_walk_share_one_count() {
        let walk = GraphWalk::recursive(&repo());
        let root = walk.root();
        root.enter(&d(0)).unwrap();
        let (left, right) = (root.below(), root.below());
        for n in 1..GRAPH_MANIFESTS {
            let branch = if n % 2 == 0 { left } else { right };
            branch.enter(&d(n)).unwrap();
        }
        assert!(matches!(left.enter(&d(1)), Err(GraphError::TooMany { .. })));
        let mut deep = walk.root();
        for _ in 0..INDEX_DEPTH {
            deep = deep.below();
        }
        assert!(matches!(
            deep.below().enter(&d(0)),
            Err(GraphError::TooDeep { .. })
        ));
    }
}
