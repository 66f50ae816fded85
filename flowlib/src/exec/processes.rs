//! The processes executor: one child process per task attempt, `<exe> step --spec <digest>`,
//! within the same CPU, memory and GPU slots as the thread executor. What a child gains
//! over a thread: a hard timeout (the process is killed, not abandoned), a memory limit
//! (a cgroup per task where one can be made, else a watchdog; see `exec::limit`), crash
//! isolation (a segfault or an abort fails that task only, with the signal named) and its
//! whole stdout and stderr captured into the store.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{chain, Result};
use crate::exec::child::{Ended, Launch, TaskProcess};
use crate::exec::package::{self, Package};
use crate::exec::{Capacity, Dispatch, Executor, Finished, Held, Limits};
use crate::flow::graph::TaskKey;
use crate::flow::{Graph, Resources};
use crate::meta::commit::{read_commit, record_lost};
use crate::meta::logs::write_exit;
use crate::meta::{Committed, TaskRef};
use crate::store::Datastore;
use crate::task::{Outcome, TaskSpec};

/// The processes executor of one run.
pub(crate) struct Processes {
    flow: &'static str,
    limits: Limits,
    capacity: Capacity,
    package: Option<Package>,
    tx: mpsc::Sender<Finished>,
    rx: mpsc::Receiver<Finished>,
    running: HashMap<(TaskKey, u32), (Held, TaskProcess)>,
}

impl std::fmt::Debug for Processes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processes")
            .field("limits", &self.limits)
            .field("running", &self.running.len())
            .finish()
    }
}

impl Processes {
    pub(crate) fn new(limits: Limits, flow: &'static str) -> Processes {
        let (tx, rx) = mpsc::channel();
        Processes {
            flow,
            capacity: Capacity::new(&limits),
            limits,
            package: None,
            tx,
            rx,
            running: HashMap::new(),
        }
    }

    fn start(&mut self, d: &Dispatch) -> Result<TaskProcess> {
        let pkg = self
            .package
            .as_ref()
            .expect("begin() stores the package before the first task");
        let ds = d.run.ds.clone();
        let spec = with_code(&d.spec, pkg);
        let digest = spec.store(&ds)?;
        let task = spec.task.clone();
        let launch = Launch {
            exe: pkg.exe.clone(),
            datastore: ds.url().to_string(),
            spec: digest,
            task: task.clone(),
            flow: self.flow,
            memory: spec.resources.memory,
            echo: Some(format!("[{}] ", task.task_id())),
        };
        let (tx, key, flow) = (self.tx.clone(), d.key.clone(), self.flow);
        let ds2 = ds.clone();
        TaskProcess::spawn(&ds, launch, move |ended| {
            let outcome = outcome_of(&ds2, flow, &task, &ended);
            let _ = tx.send(Finished {
                key,
                attempt: task.attempt,
                outcome,
            });
        })
    }
}

/// The spec with the run's code package digest: the task refuses any other binary.
pub(crate) fn with_code(spec: &TaskSpec, pkg: &Package) -> TaskSpec {
    let mut s = spec.clone();
    s.code = Some(pkg.digest);
    s
}

/// What a finished task process amounts to. The commit record is the truth: a process that
/// committed (success or failure) is reported as such. One that died without a record is
/// recorded `lost` with the decoded reason, create-only, so a late writer can never commit
/// that attempt; if the record appeared just before (the process committed and then died),
/// that record stands.
pub(crate) fn outcome_of(
    ds: &Datastore,
    flow: &str,
    task: &TaskRef,
    ended: &Ended,
) -> Result<Outcome> {
    if let Some(o) = committed_outcome(ds, flow, task, ended)? {
        return Ok(o);
    }
    write_exit(ds, flow, task, &ended.record);
    let msg = ended.message();
    if record_lost(ds, flow, task, &msg)? {
        return Ok(Outcome::Lost {
            error: msg,
            platform: false,
        });
    }
    Ok(committed_outcome(ds, flow, task, ended)?.unwrap_or(Outcome::Fenced))
}

/// The outcome the attempt's commit record states, if it has one.
pub(crate) fn committed_outcome(
    ds: &Datastore,
    flow: &str,
    task: &TaskRef,
    ended: &Ended,
) -> Result<Option<Outcome>> {
    let Some((record, manifest)) = read_commit(ds, flow, task)? else {
        return Ok(None);
    };
    Ok(Some(match (record.manifest, manifest) {
        (Some(pin), Some(m)) if record.status.is_success() => {
            Outcome::Committed(Arc::new(Committed::of(task.clone(), pin, m)))
        }
        _ if record.status == crate::meta::AttemptStatus::Failed => {
            let mut e = record.error.unwrap_or_else(|| "failed".into());
            if !ended.tail.is_empty() {
                e.push_str("; last output:\n");
                e.push_str(
                    &ended
                        .tail
                        .iter()
                        .map(|l| format!("  | {l}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
            }
            Outcome::Failed(e)
        }
        // Fenced (timed out) or recorded lost by someone else.
        _ => Outcome::Fenced,
    }))
}

impl Executor for Processes {
    fn name(&self) -> &'static str {
        "processes"
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

    fn begin(&mut self, ds: &Datastore) -> Result<()> {
        if !ds.is_shared() {
            return Err(crate::error::Error::invalid(format!(
                "the processes executor needs a datastore its child processes can open; {} exists only in this process (use a directory or an object store)",
                ds.url()
            )));
        }
        self.package = Some(package::ensure(ds)?);
        Ok(())
    }

    fn try_start(&mut self, d: Dispatch) -> Result<(), Box<Dispatch>> {
        let Some(held) = self.capacity.take(&d.spec.resources) else {
            return Err(Box::new(d));
        };
        let key = (d.key.clone(), d.spec.task.attempt);
        match self.start(&d) {
            Ok(p) => {
                self.running.insert(key, (held, p));
            }
            Err(e) => {
                self.capacity.give(held);
                let _ = self.tx.send(Finished {
                    key: d.key,
                    attempt: d.spec.task.attempt,
                    outcome: Ok(Outcome::Lost {
                        error: format!("could not start the task process: {}", chain(&e)),
                        platform: true,
                    }),
                });
            }
        }
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> Vec<Finished> {
        let mut out = Vec::new();
        match self.rx.recv_timeout(timeout) {
            Ok(f) => out.push(f),
            Err(_) => return out,
        }
        out.extend(self.rx.try_iter());
        out.retain(|f| {
            let key = (f.key.clone(), f.attempt);
            match self.running.remove(&key) {
                Some((held, _)) => {
                    self.capacity.give(held);
                    true
                }
                // A start failure never ran; an abandoned attempt's result is dropped.
                None => matches!(f.outcome, Ok(Outcome::Lost { platform: true, .. })),
            }
        });
        out
    }

    fn abandon(&mut self, key: &TaskKey, attempt: u32) {
        if let Some((held, p)) = self.running.remove(&(key.clone(), attempt)) {
            p.kill_timed_out();
            self.capacity.give(held);
        }
    }

    fn cancel(&mut self) {
        for (_, p) in self.running.values() {
            p.kill();
        }
    }
}
