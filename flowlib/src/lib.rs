//! # flowlib
//!
//! Versioned, content-addressed, resumable flow graphs for Rust: annotate step methods,
//! and the compiler checks the graph; `cargo run -- run` executes it, storing every
//! artifact by its SHA-256 on local disk or in S3, GCS or Azure.
//!
//! ```no_run
//! use flowlib::prelude::*;
//!
//! /// Train one model per learning rate, keep the best.
//! #[derive(FlowState, Default, Serialize, Deserialize)]
//! struct Train {
//!     #[param(default = 0.8, help = "fraction of rows used for training")]
//!     split: f64,
//!     rates: Vec<f64>,
//!     score: f64,
//!     best: Option<f64>,
//! }
//!
//! #[flow]
//! impl Train {
//!     #[step(start, next = fit, foreach = rates)]
//!     fn start(&mut self) -> Result<()> {
//!         self.rates = vec![0.1, 0.01, 0.001];
//!         Ok(())
//!     }
//!
//!     #[step(next = pick)]
//!     #[resources(cpu = 1, memory = "512MiB")]
//!     fn fit(&mut self, rate: &f64) -> Result<()> {
//!         self.score = self.split * (1.0 - rate);
//!         Ok(())
//!     }
//!
//!     #[step(join, next = end)]
//!     fn pick(&mut self, inputs: Inputs<Self>) -> Result<()> {
//!         self.best = inputs.iter().map(|i| i.score).reduce(f64::max);
//!         Ok(())
//!     }
//!
//!     #[step(end)]
//!     fn end(&mut self) -> Result<()> {
//!         println!("best score: {:?}", self.best);
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     flowlib::main::<Train>()
//! }
//! ```
//!
//! ## Feature flags
//!
//! | feature | enables |
//! |---|---|
//! | `aws` | `s3://bucket/prefix` datastores (S3 and compatible servers) |
//! | `gcp` | `gs://bucket/prefix` datastores (Google Cloud Storage) |
//! | `azure` | `az://container/prefix` datastores (Azure Blob Storage) |
//! | `otel` | export the run's `tracing` spans over OTLP/HTTP when `FLOWLIB_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set |
//!
//! The local filesystem (`./.flowlib` by default) and `memory://` need no feature.

#![warn(missing_docs)]

// Lets the crate's own unit tests define flows with the macros, which name `::flowlib`.
#[cfg(test)]
extern crate self as flowlib;

// Layers, lowest first; each uses only the ones above it in this list.
mod cli;
pub mod client;
mod error;
mod exec;
pub mod export;

/// The cache of `#[cache]` steps in a datastore: its entries, what went into a key, and
/// clearing it (`cache list|show|clear` on the command line).
pub mod cache {
    pub use crate::meta::cache::{
        clear, entries, entry, CacheEntry, CachedBatch, CachedTask, Unreadable,
    };
    pub use crate::run::CacheMode;
}
mod failpoint;
mod flow;
mod maintenance;
mod meta;
mod report;
mod run;
mod store;
mod task;

#[doc(hidden)]
pub mod __private;

pub use cli::{command, main, main_with_args};
pub use client::{Run, StepView, TaskView};
pub use error::{Error, Result, RunFailure, Site, StepError};
pub use exec::{cpu_count, gpu_count, total_memory, Limits, Placement, With, EXECUTORS};
pub use export::ArgoOptions;
pub use flow::{
    BatchOptions, CacheOptions, Card, CardItem, Chart, Checkpoint, Ctx, FieldInfo, Flow, FlowState,
    Graph, Input, Inputs, JoinKind, KubernetesOptions, Lazy, ParamInfo, Resources, RetryPolicy,
    Series, SlurmOptions, Step, Transition, DEFAULT_PLATFORM_RETRIES,
};
pub use maintenance::{
    gc, prune_cache, verify, CachePolicy, Deleted, Garbage, GcReport, Place, Problem, Unreadable,
    VerifyReport,
};
pub use meta::aliases::AliasRecord;
pub use meta::metrics::{read_metrics, read_run_metrics, MetricPoint, MetricSummary};
pub use meta::query::{Attempts, Damaged};
pub use meta::tags::{Note, TagEvent, Tags};
pub use meta::{
    AttemptStatus, CodeIdentity, CommitRecord, ExitRecord, Heartbeat, IndexPath, Orchestrator,
    Parents, ResumeInfo, ReuseRecord, ReusedTask, RunEnd, RunInfo, RunRecord, RunStatus, StepShape,
    TaskAttempt, TaskManifest, TaskRef, Timings,
};
pub use run::progress::ProgressMode;
pub use run::{
    initial_state, resume, run, CacheMode, ResumeOptions, RunOptions, RunSummary,
    JOIN_VIEWS_BUDGET_ENV,
};
pub use store::codec::{decode_blob, encode_blob};
pub use store::{
    is_datastore_dir, Backend, BlobRef, CacheConfig, Datastore, DatastoreBuilder, Digest, OpenMode,
    ParseDigestError, DATASTORE_ENV, DEFAULT_CACHE_MAX, DEFAULT_DATASTORE, INLINE_LIMIT_ENV,
    MAX_INLINE_LIMIT,
};
pub use task::{run_spec, run_task, Pin, TaskOutcome, TaskSpec};

pub use flowlib_macros::{
    batch, cache, catch, checkpoint, flow, kubernetes, resources, retry, slurm, step, timeout,
    FlowState,
};

/// Everything a flow definition needs: `use flowlib::prelude::*;`.
pub mod prelude {
    pub use crate::flow::{Ctx, Flow, FlowState, Input, Inputs, Lazy};
    pub use flowlib_macros::{
        batch, cache, catch, checkpoint, flow, kubernetes, resources, retry, slurm, step, timeout,
        FlowState,
    };
    pub use serde::{Deserialize, Serialize};

    /// The result of a step: `Ok(())`, or any error (`?` converts it).
    pub type Result<T = (), E = crate::error::StepError> = std::result::Result<T, E>;
}
