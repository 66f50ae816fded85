//! `verify` (like `git fsck`) and `gc`. Both return a report and print nothing; the CLI
//! renders it.
//!
//! `verify` reads every committed manifest and checks that each blob it references exists
//! and hashes to its address; each problem names run, step, task, artifact and digest.
//!
//! `gc` deletes what no committed run references. The rule that keeps it safe next to runs
//! in progress: nothing younger than the grace period (default 24 h) is deleted, judged in
//! the listing and again just before each delete, while the deleting pass holds a lease
//! that writers wait on before they confirm a blob they rely on still exists. The protocol
//! and why it holds are at the top of `gc.rs`.

mod gc;
mod references;
mod verify;

pub use gc::{gc, prune_cache, CachePolicy, Deleted, Garbage, GcReport};
pub use references::{Place, Unreadable};
pub use verify::{verify, Problem, VerifyReport};
