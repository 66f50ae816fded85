//! `verify` (like `git fsck`) and `gc`. Both return a report and print nothing; the CLI
//! renders it.
//!
//! `verify` reads every committed manifest and checks that each blob it references exists
//! and hashes to its address; each problem names run, step, task, artifact and digest.
//!
//! `gc` deletes what no committed run references. The rule that keeps it safe next to runs
//! in progress: nothing younger than the grace period (default 24 h) is deleted. A task
//! writes its blobs moments before its commit record, and a writer that reuses an existing
//! blob refreshes its timestamp when it is older than an hour (and trusts its own memory
//! that a blob exists for at most an hour), so a blob a run is about to reference is always
//! younger than the grace period.

mod gc;
mod references;
mod verify;

pub use gc::{gc, Deleted, Garbage, GcReport};
pub use references::{Place, Unreadable};
pub use verify::{verify, Problem, VerifyReport};
