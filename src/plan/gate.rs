//! What the gates (`--gate`) decide, applied to a plan: a refused digest is
//! written nowhere, an undecided one is blocked. Pure: the verdicts are
//! data, asked for by the caller.

use std::collections::{BTreeMap, BTreeSet};

use crate::reference::{Digest, Repository};

use super::{Action, Plan};

/// What a gate said of a source digest that was not "yes".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateVerdict {
    /// Refused, with the gate's reason.
    Refused(String),
    /// No verdict (the gate timed out or could not run), with why.
    Undecided(String),
}

/// The source digests the plan copies, each once: what gates are asked
/// about.
pub fn gated_copies(plan: &Plan) -> BTreeSet<(Repository, Digest)> {
    plan.items
        .iter()
        .filter_map(|i| match &i.action {
            Action::Copy { source } => Some((source.repo.clone(), i.digest.clone())),
            _ => None,
        })
        .collect()
}

/// Apply the gates' `verdicts` (by source repository and digest) to
/// `plan`: a refused digest is not written anywhere (its copy, its tags and
/// its attachments become `refused`), an undecided one is blocked.
pub fn apply_verdicts(plan: &mut Plan, verdicts: &BTreeMap<(Repository, Digest), GateVerdict>) {
    // (destination repository, digest) of every refused or undecided copy,
    // then of the attachments below them.
    let mut affected: BTreeMap<(Repository, Digest), GateVerdict> = BTreeMap::new();
    for item in &plan.items {
        let Action::Copy { source } = &item.action else {
            continue;
        };
        if let Some(verdict) = verdicts.get(&(source.repo.clone(), item.digest.clone())) {
            affected.insert((item.repo.clone(), item.digest.clone()), verdict.clone());
        }
    }
    loop {
        let mut grew = false;
        for item in &plan.items {
            if let Action::Attach { attachment, .. } = &item.action {
                let key = (item.repo.clone(), item.digest.clone());
                if let Some(verdict) = affected.get(&key).cloned() {
                    grew |= affected
                        .insert((item.repo.clone(), attachment.clone()), verdict)
                        .is_none();
                }
            }
        }
        if !grew {
            break;
        }
    }
    for item in plan.items.iter_mut().filter(|i| i.action.is_work()) {
        if let Some(verdict) = affected.get(&(item.repo.clone(), item.digest.clone())) {
            let edge = item.action.edge();
            item.action = match verdict {
                GateVerdict::Refused(reason) => Action::Gated {
                    reason: reason.clone(),
                    edge,
                },
                GateVerdict::Undecided(reason) => Action::Blocked {
                    reason: format!("the gate gave no verdict: {reason}"),
                    edge,
                },
            };
        }
    }
}
