//! The Slurm executor: tasks run as Slurm jobs through the real `sbatch`, `squeue`,
//! `scontrol` and `scancel`.
//!
//! - **Submission.** Ready tasks are buffered and submitted once per driver turn: the ready
//!   tasks of one step (a foreach fanning out) go as **one job array**
//!   (`--array=0-N%P`, the throttle `P` from `#[slurm(max_parallel)]` or `--max-workers`),
//!   a lone task as one job. Joins and later steps are submitted when their inputs commit,
//!   not with `--dependency=afterok`: the commit record, not the job's exit, decides
//!   success, and a dependency would hold a join forever if a task failed but was caught.
//! - **Status.** One batched `squeue -t all -r -j <ids>` per poll (0.5 s, backing off to
//!   5 s while nothing changes). The datastore's commit record is the truth; Slurm's state
//!   only explains a job that ended without one (`scontrol -o show job`, and slurmstepd's
//!   lines in the job's output file for out-of-memory kills), decoded into one line.
//! - **Retries** stay in flowlib (`--no-requeue`). Node failures and preemption count
//!   against the step's platform budget (`#[retry(platform = N)]`), not its `times`.
//! - **Secrets.** The job script holds no values: the store's variables reach the job
//!   through `--export=NONE,<names>`, their values in `sbatch`'s own environment.
//! - **Cancel.** Ctrl-C, `cancel <run>` and a timed-out attempt `scancel` the jobs.

pub(crate) mod engine;
mod script;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::{chain, Error, Result};
use crate::exec::child::Ended;
use crate::exec::package::{self, Package};
use crate::exec::processes::{committed_outcome, with_code};
use crate::exec::{Dispatch, Executor, Finished, Limits};
use crate::flow::graph::TaskKey;
use crate::flow::{Graph, Resources};
use crate::meta::commit::record_lost;
use crate::meta::logs::ExitRecord;
use crate::meta::TaskRef;
use crate::store::Datastore;
use crate::task::Outcome;
use engine::{JobTask, QueueState};

/// Options of the Slurm executor for a run.
#[derive(Clone, Debug, Default)]
pub(crate) struct SlurmConfig {
    /// A task whose job is still pending after this long fails ("never started").
    pub(crate) pending_timeout: Option<Duration>,
    /// At most this many tasks of a job array at once (`--max-workers` when given).
    pub(crate) max_parallel: Option<usize>,
    /// Say on stderr what was submitted (job ids), unless the run is quiet.
    pub(crate) announce: bool,
}

/// Tasks in flight at once, at most.
const MAX_IN_FLIGHT: usize = 10_000;
/// Shortest and longest interval between two `squeue` polls.
const POLL_MIN: Duration = Duration::from_millis(500);
const POLL_MAX: Duration = Duration::from_secs(5);

/// One submitted task.
#[derive(Debug)]
struct Tracked {
    key: TaskKey,
    task: TaskRef,
    memory: Option<u64>,
    output: PathBuf,
    submitted: Instant,
    pending_since: Option<Instant>,
    /// When it was first seen running (its timeout counts from then).
    running_since: Option<Instant>,
    last: Option<QueueState>,
    /// Fenced (timed out) or given up: its result is not reported.
    abandoned: bool,
}

/// The Slurm executor of one run.
pub(crate) struct Slurm {
    flow: &'static str,
    graph: &'static Graph,
    cfg: SlurmConfig,
    ds: Option<Datastore>,
    package: Option<Package>,
    pending: Vec<Dispatch>,
    tracked: BTreeMap<JobTask, Tracked>,
    by_attempt: HashMap<(TaskKey, u32), JobTask>,
    in_flight: usize,
    done: VecDeque<Finished>,
    next_poll: Instant,
    poll_every: Duration,
    output_dir: PathBuf,
    /// The run was cancelled: the jobs were `scancel`led by flowlib.
    cancelling: bool,
}

impl std::fmt::Debug for Slurm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slurm")
            .field("flow", &self.flow)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl Slurm {
    /// The Slurm executor, if this machine can submit jobs.
    pub(crate) fn new(
        flow: &'static str,
        graph: &'static Graph,
        _limits: &Limits,
        cfg: SlurmConfig,
    ) -> Result<Slurm> {
        for tool in ["sbatch", "squeue", "scontrol", "scancel"] {
            if !engine::has_tool(tool) {
                return Err(Error::invalid(format!(
                    "--with slurm: `{tool}` is not on PATH; run on a machine that can submit Slurm jobs (a login node) or install the Slurm client tools"
                )));
            }
        }
        let output_dir = std::env::var_os("FLOWLIB_SLURM_OUTPUT")
            .map(PathBuf::from)
            .or_else(|| crate::store::cache_dir().map(|d| d.join("slurm")))
            .unwrap_or_else(|| std::env::temp_dir().join("flowlib-slurm"));
        Ok(Slurm {
            flow,
            graph,
            cfg,
            ds: None,
            package: None,
            pending: Vec::new(),
            tracked: BTreeMap::new(),
            by_attempt: HashMap::new(),
            in_flight: 0,
            done: VecDeque::new(),
            next_poll: Instant::now(),
            poll_every: POLL_MIN,
            output_dir,
            cancelling: false,
        })
    }

    /// Submit the buffered tasks: one job array per step (and attempt number), one job for
    /// a lone task.
    fn submit_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut groups: BTreeMap<(usize, u32), Vec<Dispatch>> = BTreeMap::new();
        for d in self.pending.drain(..) {
            groups
                .entry((d.key.0, d.spec.task.attempt))
                .or_default()
                .push(d);
        }
        for ((step, _), tasks) in groups {
            // MaxArraySize is often 1001: stay well under it.
            let mut rest = tasks;
            while !rest.is_empty() {
                let take = rest.len().min(1000);
                let chunk: Vec<Dispatch> = rest.drain(..take).collect();
                self.submit_group(step, chunk);
            }
        }
        self.poll_every = POLL_MIN;
        self.next_poll = Instant::now() + POLL_MIN;
    }

    fn submit_group(&mut self, step: usize, tasks: Vec<Dispatch>) {
        let ds = self.ds.clone().expect("begin() opens the store first");
        let pkg = self
            .package
            .clone()
            .expect("begin() stores the package first");
        let s = &self.graph.steps()[step];
        let mut digests = Vec::with_capacity(tasks.len());
        for d in &tasks {
            match with_code(&d.spec, &pkg).store(&ds) {
                Ok(dg) => digests.push(dg),
                Err(e) => {
                    let msg = format!("could not store the task spec: {}", chain(&e));
                    for d in tasks {
                        self.fail_unsubmitted(&d, msg.clone(), true);
                    }
                    return;
                }
            }
        }
        let run = tasks[0].spec.task.run.clone();
        let dir = self.output_dir.join(&run);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            let msg = format!(
                "cannot create the Slurm output directory {}: {e} (set FLOWLIB_SLURM_OUTPUT to a directory the cluster can write)",
                dir.display()
            );
            for d in tasks {
                self.fail_unsubmitted(&d, msg.clone(), false);
            }
            return;
        }
        // `FLOWLIB_SLURM_ARRAYS=off`: one job per task, for clusters that allow no arrays.
        let arrays = std::env::var("FLOWLIB_SLURM_ARRAYS").map_or(true, |v| v != "off");
        if !arrays && tasks.len() > 1 {
            for d in tasks {
                self.submit_group(step, vec![d]);
            }
            return;
        }
        let array = tasks.len() > 1;
        let throttle = s
            .slurm
            .and_then(|o| o.max_parallel.map(|p| p as usize))
            .or(self.cfg.max_parallel);
        let job = script::Job {
            flow: self.flow,
            run: &run,
            step: s,
            ds: &ds,
            package: &pkg,
            specs: &digests,
            output_dir: &dir,
            array: array.then_some(throttle),
        };
        let (args, env, text) = job.render();
        let t0 = Instant::now();
        match engine::sbatch(&args, &env, &text) {
            Ok(id) => {
                if self.cfg.announce {
                    let what = if array {
                        format!("{} tasks of `{}` as job array {id}", tasks.len(), s.name)
                    } else {
                        format!("{} as job {id}", tasks[0].spec.task_id())
                    };
                    eprintln!(
                        "flowlib: slurm: submitted {what} ({:.0} ms)",
                        t0.elapsed().as_secs_f64() * 1e3
                    );
                }
                let now = Instant::now();
                for (i, d) in tasks.into_iter().enumerate() {
                    let jt = JobTask {
                        job: id,
                        index: array.then_some(i as u32),
                    };
                    let output = job.output_file(id, jt.index);
                    self.by_attempt
                        .insert((d.key.clone(), d.spec.task.attempt), jt.clone());
                    self.tracked.insert(
                        jt,
                        Tracked {
                            key: d.key,
                            task: d.spec.task,
                            memory: d.spec.resources.memory,
                            output,
                            submitted: now,
                            pending_since: Some(now),
                            running_since: None,
                            last: None,
                            abandoned: false,
                        },
                    );
                }
            }
            Err(e) => {
                let msg = format!("Slurm refused the job of step `{}`: {}", s.name, chain(&e));
                for d in tasks {
                    self.fail_unsubmitted(&d, msg.clone(), false);
                }
            }
        }
    }

    /// A task that never reached Slurm: recorded lost with why, reported.
    fn fail_unsubmitted(&mut self, d: &Dispatch, msg: String, platform: bool) {
        self.in_flight -= 1;
        if let Some(ds) = &self.ds {
            let _ = record_lost(ds, self.flow, &d.spec.task, &msg);
        }
        self.done.push_back(Finished {
            key: d.key.clone(),
            attempt: d.spec.task.attempt,
            outcome: Ok(Outcome::Lost {
                error: msg,
                platform,
            }),
        });
    }

    /// One `squeue` over every job in flight; resolve the tasks that ended.
    fn poll(&mut self) {
        self.next_poll = Instant::now() + self.poll_every;
        let mut jobs: Vec<u64> = self
            .tracked
            .iter()
            .filter(|(_, t)| !t.abandoned)
            .map(|(j, _)| j.job)
            .collect();
        jobs.dedup();
        if jobs.is_empty() {
            return;
        }
        let states = match engine::squeue(&jobs) {
            Ok(s) => s,
            Err(e) => {
                // A transient controller problem: try again later, say so once per poll.
                eprintln!("flowlib: warning: {}", chain(&e));
                return;
            }
        };
        let now = Instant::now();
        let mut changed = false;
        let mut ended: Vec<JobTask> = Vec::new();
        let mut overdue: Vec<JobTask> = Vec::new();
        for (jt, t) in self.tracked.iter_mut().filter(|(_, t)| !t.abandoned) {
            match states.get(jt) {
                Some(st) => {
                    if t.last.as_ref() != Some(st) {
                        changed = true;
                        t.last = Some(st.clone());
                    }
                    if st.is_pending() {
                        let since = *t.pending_since.get_or_insert(now);
                        if self
                            .cfg
                            .pending_timeout
                            .is_some_and(|limit| now.duration_since(since) > limit)
                        {
                            overdue.push(jt.clone());
                        }
                    } else {
                        t.pending_since = None;
                        t.running_since.get_or_insert(now);
                    }
                    if st.is_terminal() {
                        ended.push(jt.clone());
                    }
                }
                // Slurm no longer lists it (purged, or the controller lost it).
                None if now.duration_since(t.submitted) > Duration::from_secs(5) => {
                    ended.push(jt.clone())
                }
                None => {}
            }
        }
        for jt in overdue {
            self.never_started(jt);
            changed = true;
        }
        for jt in ended {
            self.resolve(jt);
            changed = true;
        }
        self.poll_every = if changed {
            POLL_MIN
        } else {
            (self.poll_every.mul_f32(1.5)).min(POLL_MAX)
        };
        self.next_poll = now + self.poll_every;
    }

    /// A job pending past `--pending-timeout`: cancel it, fail the task with Slurm's reason.
    fn never_started(&mut self, jt: JobTask) {
        let _ = engine::scancel(&[jt.to_string()]);
        let limit = self.cfg.pending_timeout.unwrap_or_default();
        let Some(t) = self.tracked.get_mut(&jt) else {
            return;
        };
        t.abandoned = true;
        let reason = t
            .last
            .as_ref()
            .map(|s| s.reason.clone())
            .unwrap_or_else(|| "unknown".into());
        let msg = format!(
            "never started: Slurm job {jt} was still pending after {} (Reason={reason}); it was cancelled (--pending-timeout)",
            crate::flow::graph::format_ms(limit.as_millis() as u64)
        );
        let (key, task) = (t.key.clone(), t.task.clone());
        self.report_lost(&jt, key, task, msg, false);
    }

    /// A job that ended: its commit record says how; without one, Slurm's record explains.
    fn resolve(&mut self, jt: JobTask) {
        let ds = self.ds.clone().expect("open");
        let Some(t) = self.tracked.get(&jt) else {
            return;
        };
        let (key, task, memory, output) =
            (t.key.clone(), t.task.clone(), t.memory, t.output.clone());
        let tail = read_tail(&output, 40);
        let ended = Ended {
            record: ExitRecord::default(),
            tail: tail
                .lines()
                .rev()
                .filter(|l| !l.starts_with("slurmstepd"))
                .take(crate::meta::logs::TAIL_LINES)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .map(str::to_string)
                .collect(),
        };
        match committed_outcome(&ds, self.flow, &task, &ended) {
            Ok(Some(o)) => {
                self.finish(&jt, key, task.attempt, Ok(o));
                return;
            }
            Ok(None) => {}
            Err(e) => {
                self.finish(&jt, key, task.attempt, Err(e));
                return;
            }
        }
        let rec = engine::scontrol_show(&jt).ok().flatten();
        let (mut msg, platform) = match &rec {
            Some(r) if self.cancelling && r.state == "CANCELLED" => {
                ("the run was cancelled: its Slurm job was cancelled".into(), false)
            }
            Some(r) => engine::explain(r, &tail, memory),
            None => (
                format!("Slurm no longer knows job {jt} (purged, or the controller lost it) and the task recorded no result"),
                true,
            ),
        };
        msg = format!("{msg} [Slurm job {jt}]");
        if !ended.tail.is_empty() {
            msg.push_str("; last output:\n");
            msg.push_str(
                &ended
                    .tail
                    .iter()
                    .map(|l| format!("  | {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
        self.report_lost(&jt, key, task, msg, platform);
    }

    /// Record the attempt `lost` (create-only: a commit that won the race stands) and report.
    fn report_lost(
        &mut self,
        jt: &JobTask,
        key: TaskKey,
        task: TaskRef,
        msg: String,
        platform: bool,
    ) {
        let ds = self.ds.clone().expect("open");
        let outcome = match record_lost(&ds, self.flow, &task, &msg) {
            Ok(true) => Ok(Outcome::Lost {
                error: msg,
                platform,
            }),
            Ok(false) => committed_outcome(
                &ds,
                self.flow,
                &task,
                &Ended {
                    record: ExitRecord::default(),
                    tail: Vec::new(),
                },
            )
            .map(|o| o.unwrap_or(Outcome::Fenced)),
            Err(e) => Err(e),
        };
        self.finish(jt, key, task.attempt, outcome);
    }

    fn finish(&mut self, jt: &JobTask, key: TaskKey, attempt: u32, outcome: Result<Outcome>) {
        let Some(t) = self.tracked.remove(jt) else {
            return;
        };
        self.by_attempt.remove(&(key.clone(), attempt));
        if t.abandoned && !matches!(outcome, Ok(Outcome::Lost { .. })) {
            return;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        self.done.push_back(Finished {
            key,
            attempt,
            outcome,
        });
    }
}

/// The last `n` lines of a job's Slurm output file, if it is readable here.
fn read_tail(path: &std::path::Path, n: usize) -> String {
    let Ok(text) = std::fs::read(path) else {
        return String::new();
    };
    let start = text.len().saturating_sub(64 << 10);
    let text = String::from_utf8_lossy(&text[start..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Executor for Slurm {
    fn name(&self) -> &'static str {
        "slurm"
    }

    /// Ask Slurm itself (`sbatch --test-only`) whether each step's job could ever run: a
    /// partition that does not exist, memory above the partition's limit, too many CPUs or
    /// an invalid time are refused here, before anything is submitted.
    fn check(&self, graph: &Graph, steps: &[usize]) -> Result<()> {
        let mut problems = Vec::new();
        let mut seen: HashMap<Vec<String>, Option<String>> = HashMap::new();
        for s in graph.steps().iter().filter(|s| steps.contains(&s.index)) {
            let args = script::resource_args(s);
            let verdict = seen
                .entry(args.clone())
                .or_insert_with(|| engine::test_only(&args).err().map(|e| chain(&e)))
                .clone();
            if let Some(e) = verdict {
                problems.push(format!(
                    "step `{}`: Slurm refuses its job ({}): {e}",
                    s.name,
                    args.join(" ")
                ));
                continue;
            }
            // `--test-only` does not apply a partition's memory limits to the default
            // memory of a job without `--mem`; check them here.
            let partition = args.iter().find_map(|a| a.strip_prefix("--partition="));
            if let Ok(Some(p)) = engine::partition_memory(partition) {
                let mem = s.resources.memory.map(|m| m.div_ceil(1 << 20));
                if let Some(why) = engine::memory_misfit(&p, u64::from(s.resources.cpu.max(1)), mem)
                {
                    problems.push(format!(
                        "step `{}`: Slurm would refuse its job: {why}",
                        s.name
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Resources(problems.join("; ")))
        }
    }

    fn slots(&self) -> usize {
        MAX_IN_FLIGHT
    }

    fn has_room(&self, _step: usize, _r: &Resources) -> bool {
        self.in_flight < MAX_IN_FLIGHT
    }

    fn begin(&mut self, ds: &Datastore) -> Result<()> {
        if !ds.is_shared() {
            return Err(Error::invalid(format!(
                "--with slurm needs a datastore the cluster can open; {} exists only in this process (use a shared directory or an object store)",
                ds.url()
            )));
        }
        self.package = Some(package::ensure(ds)?);
        self.ds = Some(ds.clone());
        Ok(())
    }

    fn try_start(&mut self, task: Dispatch) -> Result<(), Box<Dispatch>> {
        if self.in_flight >= MAX_IN_FLIGHT {
            return Err(Box::new(task));
        }
        self.in_flight += 1;
        self.pending.push(task);
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> Vec<Finished> {
        self.submit_pending();
        let until = Instant::now() + timeout;
        loop {
            if !self.done.is_empty() {
                return self.done.drain(..).collect();
            }
            let now = Instant::now();
            if now >= self.next_poll {
                self.poll();
                continue;
            }
            if now >= until {
                return Vec::new();
            }
            std::thread::sleep(self.next_poll.min(until).saturating_duration_since(now));
        }
    }

    fn started(&self, key: &TaskKey, attempt: u32) -> crate::exec::Started {
        let Some(t) = self
            .by_attempt
            .get(&(key.clone(), attempt))
            .and_then(|jt| self.tracked.get(jt))
        else {
            // Not submitted yet (buffered): it waits.
            return crate::exec::Started::Pending;
        };
        match t.running_since {
            Some(at) => crate::exec::Started::At(at),
            None => crate::exec::Started::Pending,
        }
    }

    fn abandon(&mut self, key: &TaskKey, attempt: u32) {
        if let Some(jt) = self.by_attempt.remove(&(key.clone(), attempt)) {
            let _ = engine::scancel(&[jt.to_string()]);
            if let Some(t) = self.tracked.get_mut(&jt) {
                t.abandoned = true;
            }
            self.tracked.remove(&jt);
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }

    fn cancel(&mut self) {
        self.cancelling = true;
        for d in std::mem::take(&mut self.pending) {
            self.fail_unsubmitted(
                &d,
                "the run was cancelled before the job was submitted".into(),
                false,
            );
        }
        let mut jobs: Vec<String> = self.tracked.keys().map(|j| j.job.to_string()).collect();
        jobs.dedup();
        if let Err(e) = engine::scancel(&jobs) {
            eprintln!("flowlib: warning: {}", chain(&e));
        }
    }
}

/// The `sbatch` arguments a step's jobs get from its resources and `#[slurm]` options.
pub(crate) fn sbatch_args(s: &crate::flow::Step) -> Vec<String> {
    script::resource_args(s)
}

/// `cancel <run>`: `scancel` every job of the run still known to Slurm. Returns how many.
pub(crate) fn cancel_run_jobs(flow: &str, run: &str) -> Result<usize> {
    if !engine::has_tool("squeue") {
        return Ok(0);
    }
    let ids = engine::jobs_named(&script::job_name_prefix(flow, run))?;
    let targets: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    engine::scancel(&targets)?;
    Ok(ids.len())
}
