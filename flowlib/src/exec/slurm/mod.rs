//! The Slurm engine: tasks run as Slurm jobs through the real `sbatch`, `squeue`,
//! `scontrol` and `scancel`. What all batch engines share (buffering, one array per step,
//! polling with backoff, the commit record as the truth, fencing, cancel) is in
//! [`crate::exec::remote`]; this is the Slurm part.
//!
//! - **Submission.** A foreach's ready tasks go as **one job array**
//!   (`--array=0-N%P`, the throttle `P` from `#[slurm(max_parallel)]` or `--max-workers`),
//!   a lone task as one job. Joins and later steps are submitted when their inputs commit,
//!   not with `--dependency=afterok`: the commit record, not the job's exit, decides
//!   success, and a dependency would hold a join forever if a task failed but was caught.
//! - **Status.** One batched `squeue -t all -r -j <ids>` per poll. Slurm's state only
//!   explains a job that ended without a commit record (`scontrol -o show job`, and
//!   slurmstepd's lines in the job's output file for out-of-memory kills), decoded into one
//!   line.
//! - **Retries** stay in flowlib (`--no-requeue`). Node failures and preemption count
//!   against the step's platform budget (`#[retry(platform = N)]`), not its `times`.
//! - **Secrets.** The job script holds no values: the store's variables reach the job
//!   through `--export=NONE,<names>`, their values in `sbatch`'s own environment.
//! - **Cancel.** Ctrl-C, `cancel <run>` and a timed-out attempt `scancel` the jobs.

pub(crate) mod engine;
mod script;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::exec::package::Package;
use crate::exec::remote::{Engine, Explained, JobState, Submission};
use crate::flow::{Graph, Step};
use crate::store::Datastore;
use engine::JobTask;

/// The Slurm engine of one run.
#[derive(Debug)]
pub(crate) struct Slurm {
    output_dir: PathBuf,
    /// Each submitted task's Slurm output file (for its tail and slurmstepd's notes).
    outputs: HashMap<JobTask, PathBuf>,
}

impl Slurm {
    /// The Slurm engine, if this machine can submit jobs.
    pub(crate) fn new() -> Result<Slurm> {
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
            output_dir,
            outputs: HashMap::new(),
        })
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

impl Engine for Slurm {
    type Id = JobTask;

    fn name(&self) -> &'static str {
        "slurm"
    }

    fn describe(&self, id: &JobTask) -> String {
        format!("Slurm job {id}")
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
                .or_insert_with(|| {
                    engine::test_only(&args)
                        .err()
                        .map(|e| crate::error::chain(&e))
                })
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

    fn begin(&mut self, _ds: &Datastore, _package: &Package) -> Result<()> {
        Ok(())
    }

    /// MaxArraySize is often 1001: stay well under it.
    fn max_array(&self) -> usize {
        1000
    }

    /// `FLOWLIB_SLURM_ARRAYS=off`: one job per task, for clusters that allow no arrays.
    fn arrays(&self) -> bool {
        std::env::var("FLOWLIB_SLURM_ARRAYS").map_or(true, |v| v != "off")
    }

    fn throttle(&self, step: &Step) -> Option<usize> {
        step.slurm.and_then(|o| o.max_parallel.map(|p| p as usize))
    }

    fn submit(&mut self, s: &Submission<'_>) -> Result<Vec<JobTask>> {
        let dir = self.output_dir.join(s.run);
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::invalid(format!(
                "cannot create the Slurm output directory {}: {e} (set FLOWLIB_SLURM_OUTPUT to a directory the cluster can write)",
                dir.display()
            ))
        })?;
        let array = s.is_array();
        let job = script::Job {
            flow: s.flow,
            run: s.run,
            step: s.step,
            ds: s.ds,
            package: s.package,
            specs: s.specs,
            output_dir: &dir,
            array: array.then_some(s.throttle),
        };
        let (args, env, text) = job.render();
        let id = engine::sbatch(&args, &env, &text)?;
        Ok((0..s.specs.len())
            .map(|i| {
                let jt = JobTask {
                    job: id,
                    index: array.then_some(i as u32),
                };
                self.outputs
                    .insert(jt.clone(), job.output_file(id, jt.index));
                jt
            })
            .collect())
    }

    fn poll(&mut self, ids: &[JobTask]) -> Result<HashMap<JobTask, JobState>> {
        let mut jobs: Vec<u64> = ids.iter().map(|j| j.job).collect();
        jobs.sort_unstable();
        jobs.dedup();
        Ok(engine::squeue(&jobs)?
            .into_iter()
            .map(|(jt, st)| {
                let state = if st.is_pending() {
                    JobState::Pending(st.reason)
                } else if st.is_terminal() {
                    JobState::Ended
                } else {
                    JobState::Running
                };
                (jt, state)
            })
            .collect())
    }

    fn tail(&mut self, id: &JobTask) -> Vec<String> {
        let Some(path) = self.outputs.get(id) else {
            return Vec::new();
        };
        read_tail(path, 40)
            .lines()
            .filter(|l| !l.starts_with("slurmstepd"))
            .map(str::to_string)
            .collect()
    }

    fn explain(
        &mut self,
        id: &JobTask,
        _last: Option<&JobState>,
        _tail: &[String],
        memory: Option<u64>,
    ) -> Explained {
        let raw = self
            .outputs
            .remove(id)
            .map(|p| read_tail(&p, 40))
            .unwrap_or_default();
        let (message, platform) = match engine::scontrol_show(id).ok().flatten() {
            Some(r) => engine::explain(&r, &raw, memory),
            None => (
                format!("Slurm no longer knows job {id} (purged, or the controller lost it) and the task recorded no result"),
                true,
            ),
        };
        Explained { message, platform }
    }

    fn cancel(&mut self, ids: &[JobTask]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // A whole array is cancelled by its job id; a lone element by `job_index`.
        let whole: HashSet<u64> = ids
            .iter()
            .filter(|j| j.index.is_none())
            .map(|j| j.job)
            .collect();
        let mut by_job: HashMap<u64, usize> = HashMap::new();
        for j in ids {
            *by_job.entry(j.job).or_default() += 1;
        }
        let mut targets: Vec<String> = Vec::new();
        let mut done: HashSet<u64> = HashSet::new();
        for j in ids {
            if whole.contains(&j.job) || by_job[&j.job] > 1 {
                if done.insert(j.job) {
                    targets.push(j.job.to_string());
                }
            } else {
                targets.push(j.to_string());
            }
        }
        engine::scancel(&targets)
    }
}

/// The `sbatch` arguments a step's jobs get from its resources and `#[slurm]` options.
pub(crate) fn sbatch_args(s: &Step) -> Vec<String> {
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
