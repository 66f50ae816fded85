//! Choosing where each step runs (`--with EXECUTOR[:STEP,...]`), and the executor that
//! routes each task to the executor of its step, so that one run can start on threads,
//! fan a foreach out on Slurm and join on threads again.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::exec::remote::RemoteConfig;
use crate::exec::{Dispatch, Executor, Finished, EXECUTORS};
use crate::flow::graph::TaskKey;
use crate::flow::{Graph, Resources};

/// Where the steps of a run run: parsed from `--with` values.
///
/// `--with processes` runs every step in child processes; `--with slurm:train,score` runs
/// `train` and `score` on Slurm and the other steps on the default (threads, or what a
/// `--with` without a step list names). A step given two different executors is an error.
///
/// ```
/// let with = flowlib::With::parse(&["processes".to_string()]).unwrap();
/// assert_eq!(with.describe(), "processes");
/// assert!(flowlib::With::parse(&["gpu-farm".to_string()]).is_err());
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct With {
    /// (executor, steps) pairs; `None`: every step not named elsewhere.
    entries: Vec<(String, Option<Vec<String>>)>,
    /// Options of the batch engine executors (`--pending-timeout`, `--max-workers`).
    pub(crate) remote: RemoteConfig,
}

impl With {
    /// Parse `--with` values.
    pub fn parse(values: &[String]) -> Result<With> {
        let mut entries = Vec::new();
        for v in values {
            let (name, steps) = match v.split_once(':') {
                Some((n, s)) => {
                    let steps: Vec<String> = s
                        .split(',')
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .collect();
                    if steps.is_empty() {
                        return Err(Error::invalid(format!(
                            "--with {v}: name the steps after the colon (`--with {n}:train,score`) or drop it"
                        )));
                    }
                    (n.trim(), Some(steps))
                }
                None => (v.trim(), None),
            };
            if let Some(why) = crate::exec::compiled_out(name) {
                return Err(Error::invalid(why));
            }
            if !EXECUTORS.contains(&name) {
                return Err(Error::invalid(format!(
                    "--with {v}: unknown executor `{name}`; available: {}",
                    EXECUTORS.join(", ")
                )));
            }
            entries.push((name.to_string(), steps));
        }
        Ok(With {
            entries,
            remote: RemoteConfig::default(),
        })
    }

    /// Every step on `executor`.
    pub fn all(executor: &str) -> Result<With> {
        With::parse(&[executor.to_string()])
    }

    /// Set how long a Slurm job may stay pending before its task fails (default: none).
    pub fn with_pending_timeout(mut self, t: Option<Duration>) -> Self {
        self.remote.pending_timeout = t;
        self
    }

    /// The `--with` values, as given (`threads` when none).
    pub fn describe(&self) -> String {
        if self.entries.is_empty() {
            return "threads".into();
        }
        self.entries
            .iter()
            .map(|(n, s)| match s {
                Some(s) => format!("{n}:{}", s.join(",")),
                None => n.clone(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Where each step of `graph` runs.
    pub fn placement(&self, graph: &Graph) -> Result<Placement> {
        let mut default = "threads";
        for (n, s) in &self.entries {
            if s.is_none() {
                if default != "threads" && default != n {
                    return Err(Error::invalid(format!(
                        "--with {default} and --with {n} both name every step; give one of them a step list (`--with {n}:STEP`)"
                    )));
                }
                default = EXECUTORS.iter().find(|e| *e == n).expect("checked");
            }
        }
        let mut per_step: Vec<Option<&'static str>> = vec![None; graph.steps().len()];
        for (n, s) in &self.entries {
            let Some(steps) = s else { continue };
            let name: &'static str = EXECUTORS.iter().find(|e| *e == n).expect("checked");
            for step in steps {
                let Some(st) = graph.step(step) else {
                    let names: Vec<&str> = graph.steps().iter().map(|s| s.name).collect();
                    return Err(Error::invalid(format!(
                        "--with {n}:{}: flow {} has no step `{step}` (steps: {})",
                        steps.join(","),
                        graph.flow(),
                        names.join(", ")
                    )));
                };
                if let Some(prev) = per_step[st.index] {
                    if prev != name {
                        return Err(Error::invalid(format!(
                            "step `{step}` is given two executors: --with {prev}:{step} and --with {name}:{step}"
                        )));
                    }
                }
                per_step[st.index] = Some(name);
            }
        }
        Ok(Placement {
            steps: per_step.into_iter().map(|p| p.unwrap_or(default)).collect(),
        })
    }
}

/// The executor of each step of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Placement {
    steps: Vec<&'static str>,
}

impl Placement {
    /// The executor step `index` runs on.
    pub fn executor_of(&self, index: usize) -> &'static str {
        self.steps.get(index).copied().unwrap_or("threads")
    }

    /// The distinct executors, in order of first use.
    pub fn executors(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for s in &self.steps {
            if !out.contains(s) {
                out.push(s);
            }
        }
        out
    }

    /// The steps that run on `executor`.
    pub(crate) fn steps_on(&self, executor: &str) -> Vec<usize> {
        (0..self.steps.len())
            .filter(|&i| self.steps[i] == executor)
            .collect()
    }
}

/// Several executors behind one: each task goes to its step's executor.
pub(crate) struct Routed {
    placement: Placement,
    parts: Vec<Box<dyn Executor>>,
    /// Index into `parts` of each step.
    route: Vec<usize>,
}

impl std::fmt::Debug for Routed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routed")
            .field("placement", &self.placement)
            .finish_non_exhaustive()
    }
}

impl Routed {
    pub(crate) fn new(placement: Placement, parts: Vec<Box<dyn Executor>>) -> Routed {
        let names: Vec<&str> = parts.iter().map(|p| p.name()).collect();
        let route = placement
            .steps
            .iter()
            .map(|s| names.iter().position(|n| n == s).unwrap_or(0))
            .collect();
        Routed {
            placement,
            parts,
            route,
        }
    }

    fn part_of(&self, step: usize) -> usize {
        self.route.get(step).copied().unwrap_or(0)
    }
}

impl Executor for Routed {
    fn name(&self) -> &'static str {
        "mixed"
    }

    fn check(&self, graph: &Graph, steps: &[usize]) -> Result<()> {
        let mut problems = Vec::new();
        for p in &self.parts {
            let mine: Vec<usize> = self
                .placement
                .steps_on(p.name())
                .into_iter()
                .filter(|s| steps.contains(s))
                .collect();
            if let Err(e) = p.check(graph, &mine) {
                problems.push(e);
            }
        }
        match problems.len() {
            0 => Ok(()),
            _ => Err(problems.remove(0)),
        }
    }

    fn slots(&self) -> usize {
        self.parts.iter().map(|p| p.slots()).sum()
    }

    fn has_room(&self, step: usize, r: &Resources) -> bool {
        self.parts[self.part_of(step)].has_room(step, r)
    }

    fn reads_spec(&self, step: usize) -> bool {
        self.parts[self.part_of(step)].reads_spec(step)
    }

    fn begin(&mut self, ds: &crate::store::Datastore) -> Result<()> {
        self.parts.iter_mut().try_for_each(|p| p.begin(ds))
    }

    fn try_start(&mut self, task: Dispatch) -> Result<(), Box<Dispatch>> {
        let i = self.part_of(task.key.0);
        self.parts[i].try_start(task)
    }

    fn wait(&mut self, timeout: Duration) -> Vec<Finished> {
        let until = Instant::now() + timeout;
        let slice = Duration::from_millis(2);
        loop {
            let mut out = Vec::new();
            for p in &mut self.parts {
                out.extend(p.wait(Duration::ZERO));
            }
            if !out.is_empty() {
                return out;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return out;
            }
            for p in &mut self.parts {
                out.extend(p.wait(slice.min(left)));
            }
            if !out.is_empty() || Instant::now() >= until {
                return out;
            }
        }
    }

    fn abandon(&mut self, key: &TaskKey, attempt: u32) {
        let i = self.part_of(key.0);
        self.parts[i].abandon(key, attempt);
    }

    fn started(&self, key: &TaskKey, attempt: u32) -> crate::exec::Started {
        self.parts[self.part_of(key.0)].started(key, attempt)
    }

    fn cancel(&mut self) {
        for p in &mut self.parts {
            p.cancel();
        }
    }
}
