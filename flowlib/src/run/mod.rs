//! The run layer: start a run or resume one, plan what a resume reuses, drive the
//! scheduler (a pure state machine) against an executor, and report run events.

pub(crate) mod cache;
mod drive;
pub(crate) mod events;
mod heartbeat;
mod orchestrated;
mod policy;
pub(crate) mod progress;
mod resume;
pub(crate) mod scheduler;
mod start;
mod telemetry;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::{Error, Result, RunFailure};
use crate::exec::{Executor, Limits, With};
use crate::flow::Flow;
use crate::meta::{
    hostname, new_run_id, now_rfc3339, username, Committed, ResumeInfo, ReuseRecord, RunEnd,
    RunRecord, RunStatus, METADATA_VERSION,
};
use crate::run::progress::{Progress, ProgressMode};
use crate::run::scheduler::{Prefilled, Scheduler};
use crate::store::{layout, BlobRef, Datastore, Digest};
use crate::task::RunContext;

pub use cache::CacheMode;
pub(crate) use orchestrated::{end_orchestrated, start_orchestrated};
pub use resume::resume;
pub(crate) use resume::resume_prepared;
pub use start::initial_state;
pub(crate) use start::shape;

/// Options of a run: `RunOptions::default()` (the machine's capacity, progress on stderr,
/// no parameters) refined with the `with_*` methods.
///
/// ```
/// let opts = flowlib::RunOptions::default()
///     .with_limits(flowlib::Limits::detect(Some(2), None))
///     .with_progress(flowlib::ProgressMode::Quiet)
///     .with_param("split", "0.7");
/// assert_eq!(opts.params, [("split".to_string(), "0.7".to_string())]);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RunOptions {
    /// Capacity of the thread executor.
    pub limits: Limits,
    /// Progress display.
    pub progress: ProgressMode,
    /// Parameter values from the command line: (field name, raw text).
    pub params: Vec<(String, String)>,
    /// The command line, recorded in the run record.
    pub argv: Vec<String>,
    /// Where each step runs (`--with`; default: every step on threads).
    pub with: With,
    /// Set this flag to cancel the run (the CLI sets it on Ctrl-C): running tasks are
    /// stopped, nothing new starts, and `resume` continues the run later.
    pub cancel: Option<Arc<AtomicBool>>,
    /// How the run uses the cache of `#[cache]` steps (default: look up and publish).
    pub cache: CacheMode,
    /// Tags the run starts with (`--tag key=value`), recorded as its first tag event.
    pub tags: Vec<(String, String)>,
    /// How many bytes of join inputs' committed views the driver keeps in memory (`None`:
    /// `$FLOWLIB_JOIN_VIEWS_BUDGET`, else 8 MiB). Past it a join input is kept as a
    /// ~100-byte pin and the join reads its record from the store when it loads it.
    pub join_views_budget: Option<usize>,
}

/// The environment variable that sets [`RunOptions::join_views_budget`], in bytes.
pub const JOIN_VIEWS_BUDGET_ENV: &str = "FLOWLIB_JOIN_VIEWS_BUDGET";

/// The budget a run uses: the option, else the environment, else the default.
fn join_views_budget(opts: &RunOptions) -> Result<usize> {
    if let Some(b) = opts.join_views_budget {
        return Ok(b);
    }
    match std::env::var(JOIN_VIEWS_BUDGET_ENV) {
        Ok(v) => v.trim().parse().map_err(|_| {
            Error::invalid(format!(
                "{JOIN_VIEWS_BUDGET_ENV}=`{v}` is not a number of bytes"
            ))
        }),
        Err(_) => Ok(scheduler::JOIN_VIEWS_BUDGET),
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            limits: Limits::detect(None, None),
            progress: ProgressMode::Quiet,
            params: Vec::new(),
            argv: std::env::args().collect(),
            with: With::default(),
            cancel: None,
            cache: CacheMode::default(),
            tags: Vec::new(),
            join_views_budget: None,
        }
    }
}

impl RunOptions {
    /// Run within `limits` (CPU slots, memory budget, GPUs).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Report progress this way.
    pub fn with_progress(mut self, progress: ProgressMode) -> Self {
        self.progress = progress;
        self
    }

    /// Set parameter `name` (the field name) from its command-line text.
    pub fn with_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// Set several parameters: (field name, raw text) pairs.
    pub fn with_params(mut self, params: Vec<(String, String)>) -> Self {
        self.params.extend(params);
        self
    }

    /// Run steps where `with` says (`--with`).
    pub fn with_executors(mut self, with: With) -> Self {
        self.with = with;
        self
    }

    /// Start the run with these tags (key, value), like `run --tag key=value`.
    pub fn with_tags(mut self, tags: Vec<(String, String)>) -> Self {
        self.tags.extend(tags);
        self
    }

    /// Keep at most `bytes` of join inputs' committed views in the driver's memory (see
    /// [`join_views_budget`](Self::join_views_budget)); `0` keeps none, so every join reads
    /// its inputs from the store, as a join on another machine does.
    pub fn with_join_views_budget(mut self, bytes: usize) -> Self {
        self.join_views_budget = Some(bytes);
        self
    }

    /// Cancel the run when `flag` becomes true.
    pub fn with_cancel_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Neither look up nor publish cache entries (`run --no-cache`).
    pub fn without_cache(mut self) -> Self {
        self.cache.disabled = true;
        self
    }

    /// Recompute step `name` and republish its cache entries, even on a hit
    /// (`run --refresh NAME`).
    pub fn with_refresh(mut self, name: impl Into<String>) -> Self {
        self.cache.refresh.push(name.into());
        self
    }

    /// Record this command line in the run record.
    pub fn with_argv(mut self, argv: Vec<String>) -> Self {
        self.argv = argv;
        self
    }
}

/// What to resume: `ResumeOptions::default()` (the latest run, only its failed or missing
/// tasks) refined with the `with_*` methods.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ResumeOptions {
    /// The run to resume (default: the latest run of the flow).
    pub origin: Option<String>,
    /// Re-run this step and everything downstream of it (default: only failed or missing tasks).
    pub step: Option<String>,
}

impl ResumeOptions {
    /// Resume run `id` instead of the latest one.
    pub fn with_origin(mut self, id: impl Into<String>) -> Self {
        self.origin = Some(id.into());
        self
    }

    /// Re-run step `name` and everything downstream of it.
    pub fn with_step(mut self, name: impl Into<String>) -> Self {
        self.step = Some(name.into());
        self
    }
}

/// What happened in a run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// Final status.
    pub status: RunStatus,
    /// Tasks that committed successfully in this run (reused ones are counted apart).
    pub tasks_ok: usize,
    /// Tasks reused from the origin run.
    pub tasks_reused: usize,
    /// Tasks of `#[cache]` steps taken from the cache (counted apart from `tasks_ok`).
    pub tasks_cached: usize,
    /// Failed tasks and their errors.
    pub failures: Vec<(String, String)>,
    /// Steps that never ran because of upstream failures.
    pub not_run: Vec<String>,
    /// Wall time.
    pub duration: Duration,
    /// For a resume: each changed parameter and the steps re-run because of it (the steps
    /// that read it and everything downstream of them).
    pub rerun_for_params: BTreeMap<String, Vec<String>>,
}

impl RunSummary {
    /// `Ok(())` if the run succeeded, else an error naming the failed tasks.
    pub fn into_result(self) -> Result<RunSummary> {
        if self.status == RunStatus::Succeeded {
            Ok(self)
        } else {
            Err(Error::RunFailed(RunFailure {
                run_id: self.run_id.clone(),
                failed: self.failures.clone(),
                not_run: self.not_run.len(),
            }))
        }
    }

    /// The end record of this run.
    fn end_record(&self) -> RunEnd {
        RunEnd {
            status: self.status,
            finished: now_rfc3339(),
            duration_ms: self.duration.as_millis() as u64,
            tasks_ok: self.tasks_ok + self.tasks_reused + self.tasks_cached,
            tasks_reused: self.tasks_reused,
            tasks_cached: self.tasks_cached,
            failures: self.failures.clone(),
            not_run: self.not_run.len(),
        }
    }
}

/// What a run starts with: its state, and for a resume what it takes from the origin.
struct Launch<F> {
    state: F,
    /// The initial blobs, when already stored (a resume without parameter changes).
    initial: Option<BTreeMap<String, BlobRef>>,
    resume: Option<ResumeInfo>,
    reuse: Option<ReuseRecord>,
    pre: Prefilled,
}

impl<F> Launch<F> {
    /// A fresh run from `state`.
    fn new(state: F) -> Self {
        Launch {
            state,
            initial: None,
            resume: None,
            reuse: None,
            pre: Prefilled::default(),
        }
    }
}

/// The executor for a run with `opts`, checked against the graph: a run it could never
/// complete (a step asking for more CPUs, memory or GPUs than it has) is refused here,
/// before anything is written.
pub(crate) fn prepare<F: Flow>(opts: &RunOptions) -> Result<Box<dyn Executor>> {
    let executor = crate::exec::create::<F>(&opts.with, &opts.limits)?;
    for name in &opts.cache.refresh {
        let Some(step) = F::graph().step(name) else {
            return Err(Error::invalid(format!(
                "--refresh {name}: flow {} has no step `{name}`",
                F::NAME
            )));
        };
        if step.cache.is_none() {
            return Err(Error::invalid(format!(
                "--refresh {name}: step `{name}` is not a #[cache] step, so it always runs"
            )));
        }
    }
    let all: Vec<usize> = (0..F::graph().steps().len()).collect();
    executor.check(F::graph(), &all)?;
    Ok(executor)
}

/// Start a new run of `F` and wait for it to finish.
///
/// Returns the summary whether the run succeeded or failed; errors are for runs that could
/// not start (bad parameters, resources, datastore).
pub fn run<F: Flow>(ds: &Datastore, opts: &RunOptions) -> Result<RunSummary> {
    let executor = prepare::<F>(opts)?;
    let state = initial_state::<F>(&opts.params)?;
    run_prepared::<F>(ds, opts, executor, state)
}

/// [`run`] with an executor from [`prepare`] and the state from [`initial_state`].
pub(crate) fn run_prepared<F: Flow>(
    ds: &Datastore,
    opts: &RunOptions,
    executor: Box<dyn Executor>,
    state: F,
) -> Result<RunSummary> {
    launch::<F>(ds, opts, executor, Launch::new(state))
}

fn launch<F: Flow>(
    ds: &Datastore,
    opts: &RunOptions,
    mut executor: Box<dyn Executor>,
    l: Launch<F>,
) -> Result<RunSummary> {
    let graph = F::graph();
    let views_budget = join_views_budget(opts)?;
    // This run writes records of the current format: an older flowlib must refuse the
    // store from now on rather than misread them.
    ds.mark_current_format()?;
    let initial = match l.initial {
        Some(i) => i,
        None => start::store_initial(ds, &l.state)?,
    };
    let params: BTreeMap<String, BlobRef> = F::FIELDS
        .iter()
        .filter(|f| f.param.is_some())
        .filter_map(|f| initial.get(f.name).map(|b| (f.name.to_string(), *b)))
        .collect();
    let mut record = new_record::<F>(&l.state, initial.clone(), opts.argv.clone(), l.resume);
    record.executors = Some(
        opts.with
            .placement(graph)?
            .executors()
            .into_iter()
            .map(str::to_string)
            .collect(),
    );
    // A remote executor stores the code package now: a run that cannot ship its code
    // never starts.
    executor.begin(ds)?;
    let (record, mut heartbeat) = create_run_record(ds, record, l.reuse.as_ref())?;
    crate::failpoint::hold("after-run-record", &record.run_id);
    if !opts.tags.is_empty() {
        use crate::meta::tags;
        let event = tags::TagEvent::new(opts.tags.iter().cloned().collect(), Vec::new(), None);
        let target = tags::TagTarget::Run {
            run: record.run_id.clone(),
        };
        tags::add(ds, F::NAME, &target, &event)?;
    }
    if opts.progress != ProgressMode::Quiet {
        let mut line = format!("flowlib: run {} of {} started", record.run_id, F::NAME);
        if let Some(r) = &record.resume {
            line.push_str(&format!(
                " (resuming {}, {} tasks reused)",
                r.origin, r.reused_tasks
            ));
        }
        eprintln!("{line}");
    }
    let t0 = Instant::now();
    let run = Arc::new(RunContext::new(
        ds.clone(),
        F::NAME,
        record.run_id.clone(),
        params,
    ));
    let mut scheduler = Scheduler::new(graph, run, l.pre);
    scheduler.set_views_budget(views_budget);
    scheduler.start(Arc::new(Committed::initial(initial)));
    let names = graph.steps().iter().map(|s| s.name).collect();
    let mut progress = Progress::new(opts.progress, names);
    let fence = drive::StoreFence {
        ds,
        flow: F::NAME,
        run: &record.run_id,
    };
    let mut cancelled = drive::CancelWatch::new(ds, F::NAME, &record.run_id, opts.cancel.clone());
    let uses_cache = graph.steps().iter().any(|s| s.cache.is_some());
    if uses_cache && !opts.cache.disabled {
        let refresh = graph
            .steps()
            .iter()
            .map(|s| opts.cache.refresh.iter().any(|r| r == s.name))
            .collect();
        executor = Box::new(cache::CachedExecutor::new(
            executor,
            graph,
            crate::task::cache::probe::<F>,
            refresh,
            ds.clone(),
            F::NAME,
            record.run_id.clone(),
        ));
    }
    let run_span = telemetry::run_span(F::NAME, &record.run_id);
    let tally = {
        let mut traced =
            telemetry::Traced::new(executor.as_mut(), run_span.clone(), F::NAME, &record.run_id);
        run_span.in_scope(|| {
            drive::drive(scheduler, &mut traced, &mut progress, &fence, &mut || {
                cancelled.is_cancelled()
            })
        })
    };
    run_span.record("status", tally.status.to_string());
    drop(run_span);
    let summary = RunSummary {
        run_id: record.run_id.clone(),
        status: tally.status,
        tasks_ok: tally.tasks_ok,
        tasks_reused: tally.tasks_reused,
        tasks_cached: tally.tasks_cached,
        failures: tally.failures,
        not_run: tally.not_run,
        duration: t0.elapsed(),
        rerun_for_params: record
            .resume
            .as_ref()
            .map(|r| r.rerun_for_params.clone())
            .unwrap_or_default(),
    };
    crate::failpoint::hold("before-run-end", &summary.run_id);
    write_end(ds, F::NAME, &summary, &mut heartbeat)?;
    Ok(summary)
}

/// The run record of a new run of `F` from `state` (its id is picked when it is written).
fn new_record<F: Flow>(
    state: &F,
    initial: BTreeMap<String, BlobRef>,
    argv: Vec<String>,
    resume: Option<ResumeInfo>,
) -> RunRecord {
    let graph = F::graph();
    RunRecord {
        version: METADATA_VERSION,
        flow: F::NAME.to_string(),
        run_id: String::new(),
        started: now_rfc3339(),
        params: start::params_json(state),
        initial,
        graph_digest: graph.digest().to_string(),
        graph: shape(graph),
        code: crate::meta::identity::current(),
        host: hostname(),
        user: username(),
        pid: std::process::id(),
        argv,
        resume,
        orchestrator: None,
        executors: None,
    }
}

/// Write the run's `end.json`, trying a few times over a second (a disk may be freed by
/// then). If it cannot be written, the heartbeat records why, so the run reads as failed
/// rather than killed (see `run::heartbeat`), and the error names the record, the store
/// and the cause (the OS error of a full disk).
fn write_end(
    ds: &Datastore,
    flow: &str,
    summary: &RunSummary,
    heartbeat: &mut heartbeat::Beating,
) -> Result<()> {
    let rel = layout::run_end(flow, &summary.run_id);
    let end = summary.end_record();
    let mut tries = 0;
    let e = loop {
        match ds.create_json(&rel, &end) {
            // Create-only: `false` means an end record is already there, which only this
            // driver writes (its own earlier try whose response was lost).
            Ok(_) => return Ok(()),
            Err(e) if tries >= 2 => break e,
            Err(_) => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(400));
            }
        }
    };
    let why = crate::error::chain(&e);
    let recorded = heartbeat.end_failed(&why);
    Err(Error::metadata(
        ds.path(&rel),
        format!(
            "run {} finished ({}) but could not write its end record in {}: {why}; {}",
            summary.run_id,
            summary.status,
            ds.url(),
            if recorded {
                "its heartbeat records the run as failed"
            } else {
                "its heartbeat could not be updated either, so it will show as killed"
            }
        ),
    ))
}

/// Write `run.json` create-only under a fresh run id (ids are unique by construction;
/// create-only makes sure), and start the run's heartbeat, which the run keeps until it
/// ends.
///
/// The heartbeat comes first, create-only: it reserves the id, and a run record never
/// exists without a heartbeat that tells whether the run is alive. A resume then claims
/// its origin (`resume::claim_origin`), so that of two concurrent resumes of one origin
/// the second refuses before writing anything.
///
/// A resume's reuse record goes first, create-only under the same id, and the run record
/// names its digest: a run record never exists without the reuse record it names, so a
/// crash between the two writes leaves only a reuse record without a run, which nothing
/// reads (a run without `run.json` is not listed, resumed or referenced).
fn create_run_record(
    ds: &Datastore,
    mut record: RunRecord,
    reuse: Option<&ReuseRecord>,
) -> Result<(RunRecord, heartbeat::Beating)> {
    // Compact, not pretty like the other records: a resume of 100,000 tasks lists 100,000
    // entries (about 200 bytes each this way, twice that indented).
    let reuse = reuse.map(|r| {
        let mut out = Vec::with_capacity(256 + r.tasks.len() * 224);
        serde_json::to_writer(&mut out, r).expect("metadata serializes to JSON");
        Bytes::from(out)
    });
    for _ in 0..6 {
        record.run_id = new_run_id();
        let orchestrator = record.orchestrator.clone();
        let Some(mut beating) =
            heartbeat::Beating::start(ds, &record.flow, &record.run_id, orchestrator)?
        else {
            continue;
        };
        if let Some(r) = &record.resume {
            resume::claim_origin(ds, &record.flow, &r.origin, &record.run_id)?;
        }
        if let Some(bytes) = &reuse {
            if !ds.create(&layout::reuse(&record.flow, &record.run_id), bytes.clone())? {
                continue;
            }
            let pin = BlobRef {
                digest: Digest::of(bytes),
                size: bytes.len() as u64,
            };
            record
                .resume
                .as_mut()
                .expect("a reuse record belongs to a resumed run")
                .reuse = Some(pin);
            crate::failpoint::hold("after-reuse-record", &record.run_id);
        }
        if ds.create_json(&layout::run_record(&record.flow, &record.run_id), &record)? {
            beating.recorded = true;
            return Ok((record, beating));
        }
    }
    Err(Error::metadata(
        ds.path(&layout::runs(&record.flow)),
        "could not pick an unused run id",
    ))
}
