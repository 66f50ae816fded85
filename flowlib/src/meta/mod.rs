//! The metadata layer: record schemas, identities, the commit protocol and the queries
//! that both the runtime and the client ask of a datastore.

pub(crate) mod aliases;
pub(crate) mod cache;
pub(crate) mod commit;
mod committed;
pub(crate) mod identity;
mod ids;
pub(crate) mod logs;
pub(crate) mod metrics;
mod parents;
mod pins;
pub(crate) mod query;
mod records;
pub(crate) mod tags;

pub(crate) use crate::store::now_rfc3339;
pub(crate) use committed::Inline;
#[cfg(test)]
pub(crate) use committed::{Artifacts, Idx};
pub(crate) use committed::{Committed, Pinned, TaskAt};
pub use ids::IndexPath;
pub(crate) use ids::{hostname, new_run_id, parse_task_id, username};
pub(crate) use ids::{task_id, validate_run_id};
pub use logs::ExitRecord;
pub use parents::Parents;
pub(crate) use parents::{last_within, string_keys};
pub(crate) use pins::Pins;
pub use query::{RunInfo, TaskAttempt};
pub use records::{
    AttemptStatus, CodeIdentity, CommitRecord, Heartbeat, Orchestrator, ResumeInfo, ReuseRecord,
    ReusedTask, RunEnd, RunRecord, RunStatus, StepShape, TaskManifest, TaskRef, Timings,
};
pub(crate) use records::{ResumeClaim, HEARTBEAT_PERIOD, HEARTBEAT_STALE, METADATA_VERSION};
