//! The thread executor: runs tasks on a pool of worker threads in this process, within
//! the run's slots: each task takes `resources(cpu)` CPU slots out of `--max-workers`, its
//! `memory` out of the memory budget and its `gpu` out of the GPUs. A timed-out attempt
//! cannot be killed; it is fenced by the scheduler, its thread abandoned and replaced.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::exec::{Capacity, Dispatch, Executor, Finished, Held};
use crate::flow::graph::{format_bytes, TaskKey};
use crate::flow::{Flow, Graph, Resources};
use crate::task::execute;

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
    pub(crate) fn check(&self, graph: &Graph, steps: &[usize]) -> Result<()> {
        let mut problems = Vec::new();
        for s in graph.steps().iter().filter(|s| steps.contains(&s.index)) {
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

/// A running attempt: the capacity it holds and its cancel flag.
#[derive(Debug)]
struct Slot {
    held: Held,
    cancel: Arc<AtomicBool>,
}

/// The thread executor of one run of `F`.
pub(crate) struct Threads<F> {
    limits: Limits,
    capacity: Capacity,
    pool: Pool,
    tx: mpsc::Sender<Finished>,
    rx: mpsc::Receiver<Finished>,
    running: HashMap<(TaskKey, u32), Slot>,
    _flow: PhantomData<fn() -> F>,
}

impl<F> std::fmt::Debug for Threads<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Threads")
            .field("limits", &self.limits)
            .field("running", &self.running.len())
            .finish()
    }
}

impl<F: Flow> Threads<F> {
    pub(crate) fn new(limits: Limits) -> Self {
        let (tx, rx) = mpsc::channel();
        Threads {
            capacity: Capacity::new(&limits),
            pool: Pool::new(limits.max_workers),
            limits,
            tx,
            rx,
            running: HashMap::new(),
            _flow: PhantomData,
        }
    }
}

impl<F: Flow> Executor for Threads<F> {
    fn name(&self) -> &'static str {
        "threads"
    }

    fn check(&self, graph: &Graph, steps: &[usize]) -> Result<()> {
        self.limits.check(graph, steps)
    }

    fn slots(&self) -> usize {
        self.limits.max_workers
    }

    fn has_room(&self, _step: usize, r: &Resources) -> bool {
        self.capacity.fits(r)
    }

    fn reads_spec(&self, _step: usize) -> bool {
        false
    }

    fn try_start(&mut self, d: Dispatch) -> Result<(), Box<Dispatch>> {
        let Some(held) = self.capacity.take(&d.spec.resources) else {
            return Err(Box::new(d));
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let attempt = d.spec.task.attempt;
        self.running.insert(
            (d.key.clone(), attempt),
            Slot {
                held,
                cancel: cancel.clone(),
            },
        );
        let tx = self.tx.clone();
        // The attempt's span nests under whatever span starts it (the step's, in a run).
        // A scoped subscriber (`tracing::subscriber::with_default`) follows it to the worker.
        let parent = tracing::Span::current();
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        self.pool.submit(Box::new(move || {
            let outcome = tracing::dispatcher::with_default(&dispatch, || {
                parent.in_scope(|| execute::<F>(&d.run, &d.spec, Some(d.resolved), cancel))
            });
            // Closed before the driver hears of the end: the run's span ends with the run.
            drop((parent, dispatch));
            let _ = tx.send(Finished {
                key: d.key,
                attempt,
                outcome,
            });
        }));
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> Vec<Finished> {
        let mut out = Vec::new();
        match self.rx.recv_timeout(timeout) {
            Ok(f) => out.push(f),
            Err(mpsc::RecvTimeoutError::Timeout) => return out,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                unreachable!("the executor holds a sender")
            }
        }
        out.extend(self.rx.try_iter());
        // Results of abandoned attempts are dropped: their capacity was freed when they were fenced.
        out.retain(|f| match self.running.remove(&(f.key.clone(), f.attempt)) {
            Some(slot) => {
                self.capacity.give(slot.held);
                true
            }
            None => false,
        });
        out
    }

    fn cancel(&mut self) {
        for slot in self.running.values() {
            slot.cancel.store(true, Ordering::Relaxed);
        }
    }

    fn abandon(&mut self, key: &TaskKey, attempt: u32) {
        if let Some(slot) = self.running.remove(&(key.clone(), attempt)) {
            // The thread cannot be killed: tell the step, give the pool a replacement.
            slot.cancel.store(true, Ordering::Relaxed);
            self.capacity.give(slot.held);
            self.pool.spawn_worker();
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A pool of worker threads that grows when an abandoned (timed-out) task keeps its thread.
#[derive(Debug)]
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
