//! The task layer: one attempt of one task as load → call → store → commit, described by
//! a serializable [`TaskSpec`], with the entry points other processes reach.

mod attempt;
pub(crate) mod cache;
mod call;
mod entry;
mod spec;
mod state;

pub(crate) use attempt::{execute, Outcome, CAPTURED_ENV};
pub(crate) use entry::spec_of_task;
pub use entry::{run_spec, run_task, TaskOutcome};
pub use spec::{Pin, TaskSpec};
pub(crate) use spec::{Resolved, SPEC_VERSION};
pub(crate) use state::{load_state, RunContext};
