//! The local thread executor: schedules a run's tasks on a worker pool.
//!
//! A task starts as soon as its inputs are committed, within the run's slots: each task
//! takes `resources(cpu)` CPU slots out of `--max-workers`, its `memory` out of the memory
//! budget and its `gpu` out of the GPUs. A failing task fails alone: independent branches
//! keep running and the run ends failed with every failed task named. Retries back off
//! exponentially; a timed-out attempt is fenced in the commit protocol so its result can
//! never be used, even if its thread finishes later.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{chain, Error, Result, RunFailure};
use crate::flow::Flow;
use crate::graph::{format_bytes, Graph, JoinKind, Transition};
use crate::metadata::{task_id, AttemptStatus, IndexPath, RunEnd, RunStatus};
use crate::progress::{Progress, ProgressMode};
use crate::task::{self, Committed, Outcome, RunContext, TaskSpec};

/// Capacity of a run.
#[derive(Clone, Debug)]
pub struct Limits {
    /// CPU slots (default: the machine's CPUs).
    pub max_workers: usize,
    /// Memory budget in bytes (default: the machine's memory).
    pub max_memory: u64,
    /// GPUs available.
    pub gpus: u32,
}

impl Limits {
    /// The machine's capacity, or the given overrides.
    pub fn detect(max_workers: Option<usize>, max_memory: Option<u64>) -> Limits {
        Limits {
            max_workers: max_workers.unwrap_or_else(cpu_count).max(1),
            max_memory: max_memory.unwrap_or_else(total_memory),
            gpus: gpu_count(),
        }
    }

    /// Refuse steps that could never be scheduled.
    pub(crate) fn check(&self, graph: &Graph) -> Result<()> {
        let mut problems = Vec::new();
        for s in graph.steps() {
            let r = s.resources;
            if r.cpu as usize > self.max_workers {
                problems.push(format!(
                    "step `{}` asks for cpu={} but this run has {} CPU slot{} (--max-workers; this machine has {} CPUs)",
                    s.name,
                    r.cpu,
                    self.max_workers,
                    if self.max_workers == 1 { "" } else { "s" },
                    cpu_count()
                ));
            }
            if let Some(m) = r.memory {
                if m > self.max_memory {
                    problems.push(format!(
                        "step `{}` asks for memory={} but this run has {} (this machine has {}; see --max-memory)",
                        s.name,
                        format_bytes(m),
                        format_bytes(self.max_memory),
                        format_bytes(total_memory())
                    ));
                }
            }
            if r.gpu > self.gpus {
                problems.push(format!(
                    "step `{}` asks for gpu={} but this machine has {} GPU{} (set FLOWLIB_GPUS to override detection)",
                    s.name,
                    r.gpu,
                    self.gpus,
                    if self.gpus == 1 { "" } else { "s" }
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Resources(problems.join("; ")))
        }
    }
}

/// Number of CPUs available to this process.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Physical memory in bytes.
pub fn total_memory() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages > 0 && size > 0 {
        pages as u64 * size as u64
    } else {
        u64::MAX
    }
}

/// GPUs on this machine: `FLOWLIB_GPUS` if set, else the NVIDIA device nodes.
pub fn gpu_count() -> u32 {
    if let Some(n) = std::env::var("FLOWLIB_GPUS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return n;
    }
    std::fs::read_dir("/dev")
        .map(|it| {
            it.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.strip_prefix("nvidia")
                        .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
                })
                .count() as u32
        })
        .unwrap_or(0)
}

type TaskKey = (usize, IndexPath);

/// Tasks known before the run starts (reused by a resume).
#[derive(Default)]
pub(crate) struct Prefilled {
    pub(crate) reuse: HashMap<TaskKey, Arc<Committed>>,
    /// Runs whose checkpoints re-run tasks may load, newest first.
    pub(crate) checkpoint_origins: Vec<String>,
    /// Tasks that succeeded in an origin run: their old checkpoints are history, not progress.
    pub(crate) origin_succeeded: HashSet<TaskKey>,
}

/// What happened in a run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// Final status.
    pub status: RunStatus,
    /// Tasks that committed successfully (including reused ones).
    pub tasks_ok: usize,
    /// Tasks reused from the origin run.
    pub tasks_reused: usize,
    /// Failed tasks and their errors.
    pub failures: Vec<(String, String)>,
    /// Steps that never ran because of upstream failures.
    pub not_run: Vec<String>,
    /// Wall time.
    pub duration: Duration,
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
}

struct Ready {
    key: TaskKey,
    attempt: u32,
    base: Arc<Committed>,
    inputs: Vec<(usize, IndexPath, Arc<Committed>)>,
    not_before: Option<Instant>,
    skipped: usize,
}

struct Running {
    attempt: u32,
    started: Instant,
    deadline: Option<Instant>,
    cancel: Arc<AtomicBool>,
    base: Arc<Committed>,
    inputs: Vec<(usize, IndexPath, Arc<Committed>)>,
    cpu: usize,
    memory: u64,
    gpu: u32,
}

struct Done {
    key: TaskKey,
    attempt: u32,
    outcome: Result<Outcome>,
}

#[derive(Default)]
struct JoinWait {
    expected: Option<usize>,
    got: BTreeMap<usize, (usize, IndexPath, Arc<Committed>)>,
}

type Job = Box<dyn FnOnce() + Send>;

/// A pool of worker threads that grows when an abandoned (timed-out) task keeps its thread.
struct Pool {
    tx: Option<mpsc::Sender<Job>>,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    spawned: usize,
}

impl Pool {
    fn new(n: usize) -> Pool {
        let (tx, rx) = mpsc::channel::<Job>();
        let mut pool = Pool {
            tx: Some(tx),
            rx: Arc::new(Mutex::new(rx)),
            spawned: 0,
        };
        for _ in 0..n {
            pool.spawn_worker();
        }
        pool
    }

    fn spawn_worker(&mut self) {
        let rx = self.rx.clone();
        self.spawned += 1;
        let name = format!("flowlib-worker-{}", self.spawned);
        std::thread::Builder::new()
            .name(name)
            .spawn(move || loop {
                let job = {
                    let guard = match rx.lock() {
                        Ok(g) => g,
                        Err(_) => return,
                    };
                    guard.recv()
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            })
            .expect("spawn a worker thread");
    }

    fn submit(&self, job: Job) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(job);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the channel lets idle workers exit; abandoned ones exit when their step returns.
        self.tx.take();
    }
}

/// The scheduler of one run.
pub(crate) struct Scheduler<F: Flow> {
    run: Arc<RunContext>,
    graph: &'static Graph,
    limits: Limits,
    pre: Prefilled,
    ready: VecDeque<Ready>,
    /// Retries waiting for their backoff delay.
    delayed: Vec<Ready>,
    running: HashMap<TaskKey, Running>,
    committed: HashMap<TaskKey, Arc<Committed>>,
    joins: HashMap<TaskKey, JoinWait>,
    failed: Vec<(String, String)>,
    failed_steps: HashSet<usize>,
    free_cpu: usize,
    free_mem: u64,
    free_gpu: u32,
    ok_count: usize,
    reused_count: usize,
    progress: Progress,
    _flow: std::marker::PhantomData<fn() -> F>,
}

impl<F: Flow> Scheduler<F> {
    pub(crate) fn new(
        run: Arc<RunContext>,
        limits: Limits,
        pre: Prefilled,
        mode: ProgressMode,
    ) -> Self {
        let graph = F::graph();
        let names = graph.steps().iter().map(|s| s.name).collect();
        Scheduler {
            run,
            graph,
            free_cpu: limits.max_workers,
            free_mem: limits.max_memory,
            free_gpu: limits.gpus,
            limits,
            pre,
            ready: VecDeque::new(),
            delayed: Vec::new(),
            running: HashMap::new(),
            committed: HashMap::new(),
            joins: HashMap::new(),
            failed: Vec::new(),
            failed_steps: HashSet::new(),
            ok_count: 0,
            reused_count: 0,
            progress: Progress::new(mode, names),
            _flow: std::marker::PhantomData,
        }
    }

    /// Run the flow from its start step with `initial` as the start step's input.
    pub(crate) fn run(mut self, initial: Arc<Committed>) -> Result<RunSummary> {
        let t0 = Instant::now();
        let (tx, rx) = mpsc::channel::<Done>();
        let mut pool = Pool::new(self.limits.max_workers);
        let start = self.graph.start().index;
        self.enqueue((start, IndexPath::root()), initial, Vec::new());

        loop {
            self.promote_delayed();
            self.dispatch(&pool, &tx);
            if self.running.is_empty() && self.ready.is_empty() && self.delayed.is_empty() {
                break;
            }
            let wait = self.next_wakeup();
            match rx.recv_timeout(wait) {
                Ok(done) => {
                    self.on_done(done);
                    while let Ok(more) = rx.try_recv() {
                        self.on_done(more);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    unreachable!("the scheduler holds a sender")
                }
            }
            self.check_timeouts(&mut pool);
            self.progress.tick();
        }
        self.progress.finish();
        drop(pool);

        // Steps that never ran because something upstream failed (a foreach over an empty
        // collection legitimately runs nothing, so only failure shadows count).
        let mut blocked = vec![false; self.graph.steps().len()];
        for &f in &self.failed_steps {
            for (i, d) in self.graph.downstream_of(f).into_iter().enumerate() {
                blocked[i] |= d;
            }
        }
        let not_run: Vec<String> = self
            .graph
            .steps()
            .iter()
            .filter(|s| {
                blocked[s.index]
                    && !self.failed_steps.contains(&s.index)
                    && !self.committed.keys().any(|(i, _)| *i == s.index)
            })
            .map(|s| s.name.to_string())
            .collect();
        let status = if self.failed.is_empty() {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        Ok(RunSummary {
            run_id: self.run.run_id.clone(),
            status,
            tasks_ok: self.ok_count,
            tasks_reused: self.reused_count,
            failures: self.failed,
            not_run,
            duration: t0.elapsed(),
        })
    }

    fn next_wakeup(&self) -> Duration {
        let now = Instant::now();
        let mut wait = Duration::from_millis(100);
        for r in self.running.values() {
            if let Some(d) = r.deadline {
                wait = wait.min(d.saturating_duration_since(now));
            }
        }
        for r in &self.delayed {
            if let Some(t) = r.not_before {
                wait = wait.min(t.saturating_duration_since(now));
            }
        }
        wait.max(Duration::from_millis(1))
    }

    fn promote_delayed(&mut self) {
        if self.delayed.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut i = 0;
        while i < self.delayed.len() {
            if self.delayed[i].not_before.is_none_or(|t| t <= now) {
                let r = self.delayed.swap_remove(i);
                self.ready.push_back(r);
            } else {
                i += 1;
            }
        }
    }

    /// A task's inputs are committed: run it, or take it from the origin run.
    fn enqueue(
        &mut self,
        key: TaskKey,
        base: Arc<Committed>,
        inputs: Vec<(usize, IndexPath, Arc<Committed>)>,
    ) {
        self.progress.add_total(key.0, 1);
        if let Some(c) = self.pre.reuse.get(&key).cloned() {
            self.reused_count += 1;
            self.progress.reused(key.0, 1);
            self.on_committed(key, c);
            return;
        }
        self.ready.push_back(Ready {
            key,
            attempt: 0,
            base,
            inputs,
            not_before: None,
            skipped: 0,
        });
    }

    fn dispatch(&mut self, pool: &Pool, tx: &mpsc::Sender<Done>) {
        // First fit within a window, but once the head of the queue has been passed over
        // many times, stop backfilling so a large task is not starved by small ones.
        const WINDOW: usize = 64;
        let mut i = 0;
        let mut scanned = 0;
        while i < self.ready.len() && self.free_cpu > 0 && scanned < WINDOW {
            scanned += 1;
            let res = self.graph.steps()[self.ready[i].key.0].resources;
            let (cpu, mem, gpu) = (res.cpu as usize, res.memory.unwrap_or(0), res.gpu);
            let fits = cpu <= self.free_cpu && mem <= self.free_mem && gpu <= self.free_gpu;
            if !fits {
                let r = &mut self.ready[i];
                r.skipped += 1;
                if r.skipped > 2 * self.limits.max_workers {
                    break;
                }
                i += 1;
                continue;
            }
            let r = self.ready.remove(i).expect("index in range");
            self.free_cpu -= cpu;
            self.free_mem -= mem;
            self.free_gpu -= gpu;
            self.start_task(r, cpu, mem, gpu, pool, tx);
        }
    }

    fn checkpoint_sources(&self, key: &TaskKey) -> Vec<String> {
        let mut v = vec![self.run.run_id.clone()];
        if !self.pre.origin_succeeded.contains(key) {
            v.extend(self.pre.checkpoint_origins.iter().cloned());
        }
        v
    }

    fn start_task(
        &mut self,
        r: Ready,
        cpu: usize,
        memory: u64,
        gpu: u32,
        pool: &Pool,
        tx: &mpsc::Sender<Done>,
    ) {
        let step = &self.graph.steps()[r.key.0];
        let cancel = Arc::new(AtomicBool::new(false));
        let spec = TaskSpec {
            step: r.key.0,
            index: r.key.1.clone(),
            attempt: r.attempt,
            base: r.base.clone(),
            inputs: r.inputs.clone(),
            checkpoint_sources: self.checkpoint_sources(&r.key),
        };
        let now = Instant::now();
        self.running.insert(
            r.key.clone(),
            Running {
                attempt: r.attempt,
                started: now,
                deadline: step.timeout_ms.map(|ms| now + Duration::from_millis(ms)),
                cancel: cancel.clone(),
                base: r.base,
                inputs: r.inputs,
                cpu,
                memory,
                gpu,
            },
        );
        self.progress.started(r.key.0);
        let run = self.run.clone();
        let tx = tx.clone();
        let key = r.key;
        let attempt = r.attempt;
        pool.submit(Box::new(move || {
            let outcome = task::execute::<F>(&run, &spec, cancel);
            let _ = tx.send(Done {
                key,
                attempt,
                outcome,
            });
        }));
    }

    fn release(&mut self, r: &Running) {
        self.free_cpu += r.cpu;
        self.free_mem += r.memory;
        self.free_gpu += r.gpu;
    }

    fn on_done(&mut self, done: Done) {
        // A result from an attempt that was fenced off (timed out) is ignored.
        let current = self.running.get(&done.key).map(|r| r.attempt);
        if current != Some(done.attempt) {
            return;
        }
        let r = self.running.remove(&done.key).expect("running");
        self.release(&r);
        let step = &self.graph.steps()[done.key.0];
        let tid = task_id(step.name, &done.key.1);
        let elapsed = r.started.elapsed();
        match done.outcome {
            Ok(Outcome::Committed(c)) => {
                let what = match c.status {
                    AttemptStatus::Caught => "caught an error and continued".to_string(),
                    _ => format!("ok ({})", fmt_duration(elapsed)),
                };
                self.progress.finished(done.key.0, &tid, true, &what);
                self.ok_count += 1;
                self.on_committed(done.key, c);
            }
            Ok(Outcome::Failed(msg)) => self.on_failed(done.key, r, done.attempt, msg),
            Ok(Outcome::Fenced) => self.on_failed(
                done.key,
                r,
                done.attempt,
                "the attempt was fenced off by another writer".into(),
            ),
            Err(e) => self.on_failed(
                done.key,
                r,
                done.attempt,
                format!("could not record the attempt: {}", chain(&e)),
            ),
        }
    }

    fn on_failed(&mut self, key: TaskKey, r: Running, attempt: u32, msg: String) {
        let step = &self.graph.steps()[key.0];
        let tid = task_id(step.name, &key.1);
        if let Some(policy) = step.retry {
            if attempt < policy.times {
                let delay =
                    Duration::from_millis(policy.delay_ms.saturating_mul(1u64 << attempt.min(16)));
                self.progress.finished(
                    key.0,
                    &tid,
                    false,
                    &format!("attempt {attempt} failed: {msg}"),
                );
                self.progress.line(&format!(
                    "  {tid} retrying in {} (attempt {} of {})",
                    fmt_duration(delay),
                    attempt + 2,
                    policy.times + 1
                ));
                self.progress.add_total(key.0, 0);
                self.delayed.push(Ready {
                    key,
                    attempt: attempt + 1,
                    base: r.base,
                    inputs: r.inputs,
                    not_before: Some(Instant::now() + delay),
                    skipped: 0,
                });
                return;
            }
        }
        self.progress
            .finished(key.0, &tid, false, &format!("failed: {msg}"));
        self.failed_steps.insert(key.0);
        self.failed.push((tid, msg));
    }

    fn check_timeouts(&mut self, pool: &mut Pool) {
        let now = Instant::now();
        let expired: Vec<TaskKey> = self
            .running
            .iter()
            .filter(|(_, r)| r.deadline.is_some_and(|d| d <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            let step = &self.graph.steps()[key.0];
            let r = &self.running[&key];
            let limit = crate::graph::format_ms(step.timeout_ms.unwrap_or(0));
            let msg = format!("timed out after {limit}");
            match task::fence(&self.run, step.name, &key.1, r.attempt, &msg) {
                Ok(true) => {
                    // Fenced: the attempt can never commit. Its thread cannot be killed,
                    // so give the pool a replacement and free the slots.
                    r.cancel.store(true, Ordering::Relaxed);
                    let r = self.running.remove(&key).expect("running");
                    self.release(&r);
                    pool.spawn_worker();
                    let attempt = r.attempt;
                    self.on_failed(key, r, attempt, msg);
                }
                Ok(false) => {
                    // It committed just before the deadline: its result is on the way.
                    if let Some(r) = self.running.get_mut(&key) {
                        r.deadline = None;
                    }
                }
                Err(e) => {
                    if let Some(r) = self.running.get_mut(&key) {
                        r.deadline = Some(now + Duration::from_millis(500));
                    }
                    self.progress.line(&format!(
                        "  {}: cannot fence the timed-out attempt yet: {}",
                        task_id(step.name, &key.1),
                        chain(&e)
                    ));
                }
            }
        }
    }

    fn on_committed(&mut self, key: TaskKey, c: Arc<Committed>) {
        let (s, p) = key.clone();
        self.committed.insert(key, c.clone());
        let step = &self.graph.steps()[s];
        match step.transition {
            Transition::End => {}
            Transition::Foreach => {
                let n = c.foreach_count.unwrap_or(0) as usize;
                let join = step.closed_by.expect("validated: every foreach is joined");
                self.joins.entry((join, p.clone())).or_default().expected = Some(n);
                let next = step.next[0];
                for i in 0..n {
                    self.enqueue((next, p.child(i as u32)), c.clone(), Vec::new());
                }
                if n == 0 {
                    self.try_join(join, p);
                }
            }
            Transition::Branch => {
                let join = step.closed_by.expect("validated: every branch is joined");
                self.joins.entry((join, p.clone())).or_default().expected = Some(step.next.len());
                for &n in &step.next.clone() {
                    self.enqueue((n, p.clone()), c.clone(), Vec::new());
                }
            }
            Transition::Linear => {
                let n = step.next[0];
                let next = &self.graph.steps()[n];
                match next.join {
                    Some((_, kind)) => {
                        let (jp, pos) = match kind {
                            JoinKind::Foreach => {
                                (p.parent(), *p.0.last().expect("inside a foreach") as usize)
                            }
                            JoinKind::Branch => (
                                p.clone(),
                                next.preds.iter().position(|&x| x == s).unwrap_or(0),
                            ),
                        };
                        self.joins
                            .entry((n, jp.clone()))
                            .or_default()
                            .got
                            .insert(pos, (s, p, c));
                        self.try_join(n, jp);
                    }
                    None => self.enqueue((n, p), c, Vec::new()),
                }
            }
        }
    }

    fn try_join(&mut self, join: usize, path: IndexPath) {
        let key = (join, path.clone());
        let complete = self
            .joins
            .get(&key)
            .is_some_and(|w| w.expected.is_some_and(|e| w.got.len() == e));
        if !complete {
            return;
        }
        let wait = self.joins.remove(&key).expect("present");
        let (split, _) = self.graph.steps()[join].join.expect("a join");
        let base = self
            .committed
            .get(&(split, path.clone()))
            .cloned()
            .expect("the split committed before its arms");
        let inputs = wait.got.into_values().collect();
        self.enqueue(key, base, inputs);
    }
}

fn fmt_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        format!("{:.1}s", ms / 1000.0)
    } else {
        format!(
            "{}m{:02}s",
            (ms / 60_000.0) as u64,
            ((ms / 1000.0) as u64) % 60
        )
    }
}

/// Build the end record from a summary.
pub(crate) fn end_record(summary: &RunSummary) -> RunEnd {
    RunEnd {
        status: summary.status,
        finished: crate::metadata::now_rfc3339(),
        duration_ms: summary.duration.as_millis() as u64,
        tasks_ok: summary.tasks_ok + summary.tasks_reused,
        tasks_reused: summary.tasks_reused,
        failures: summary.failures.clone(),
        not_run: summary.not_run.len(),
    }
}
