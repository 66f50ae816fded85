//! The one view of a committed task that the scheduler, resume, the task entry point and
//! the client share.

use std::collections::BTreeMap;

use crate::meta::{AttemptStatus, TaskAttempt, TaskManifest, TaskRef};
use crate::store::BlobRef;

/// A committed task's artifacts, as the scheduler and readers know them.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    /// The attempt that produced them (`None` for a run's initial state).
    pub(crate) task: Option<TaskRef>,
    /// The manifest the attempt's commit record pins (`None` for a run's initial state).
    pub(crate) manifest: Option<BlobRef>,
    pub(crate) artifacts: BTreeMap<String, BlobRef>,
    pub(crate) foreach_count: Option<u64>,
    pub(crate) status: AttemptStatus,
}

impl Committed {
    /// A run's initial state: defaults and parameters, the start step's input.
    pub(crate) fn initial(artifacts: BTreeMap<String, BlobRef>) -> Committed {
        Committed {
            task: None,
            manifest: None,
            artifacts,
            foreach_count: None,
            status: AttemptStatus::Ok,
        }
    }

    /// The view of attempt `task`, committed with the manifest `m` its record pins as `pin`.
    pub(crate) fn of(task: TaskRef, pin: BlobRef, m: TaskManifest) -> Committed {
        Committed {
            task: Some(task),
            manifest: Some(pin),
            artifacts: m.artifacts,
            foreach_count: m.foreach_count,
            status: m.status,
        }
    }

    /// The view of a successful attempt read from the store; `None` for an attempt that
    /// has no manifest (fenced) or did not succeed.
    pub(crate) fn from_attempt(a: &TaskAttempt) -> Option<Committed> {
        let (m, pin) = (a.manifest.as_ref()?, a.manifest_ref?);
        let mut c = Committed::of(a.source.clone(), pin, m.clone());
        c.status = a.status;
        a.status.is_success().then_some(c)
    }
}
