//! Lineage of a value (an artifact blob, by digest): which tasks produced it, from which
//! inputs and parameters, and which later runs read it — by reusing the producing task on
//! resume, through an alias, or because the same digest appears in their manifests.
//!
//! A task *produces* a value when its manifest names the digest under an artifact that
//! none of its parents hold with that digest and that is not the run's initial state; a
//! task that passes it on unchanged only carries it. The scan reads every committed
//! manifest of the flow once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::meta::aliases::{self, AliasRecord};
use crate::meta::{parse_task_id, TaskRef};
use crate::store::{BlobRef, Datastore, Digest};

/// Where a value came from and where it went.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Lineage {
    /// The value's digest.
    pub digest: Digest,
    /// The tasks that produced it.
    pub produced_by: Vec<Producer>,
    /// Runs whose initial state (a parameter or a default) holds it: (run, field).
    pub initial_in: Vec<(String, String)>,
    /// Other runs that read it: each run once, by its first task naming it.
    pub appears_in: Vec<Appearance>,
    /// Aliases whose current target holds it.
    pub aliases: Vec<AliasRecord>,
}

/// A task that produced the value.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Producer {
    /// The attempt.
    pub task: TaskRef,
    /// Under which artifact name.
    pub artifact: String,
    /// The tasks it started from.
    pub inputs: Vec<TaskRef>,
    /// Its run's parameters.
    pub params: BTreeMap<String, serde_json::Value>,
}

/// A run, other than a producer's, in which the value appears.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Appearance {
    /// The run.
    pub run: String,
    /// The attempt whose manifest names it (in another run when reused).
    pub task: TaskRef,
    /// Under which artifact name.
    pub artifact: String,
    /// The run reused that task from its origin on resume.
    pub reused: bool,
}

/// The digest `target` names: a digest (`sha256:…` or 64 hex digits), or
/// `<run>/<step>[/<index>]/<artifact>` of flow `flow`.
pub fn resolve_value(ds: &Datastore, flow: &str, target: &str) -> Result<Digest> {
    if let Ok(d) = target.parse::<Digest>() {
        return Ok(d);
    }
    let Some((run, rest)) = target.split_once('/') else {
        return Err(Error::invalid(format!(
            "`{target}` is neither a digest nor <run>/<step>[/<index>]/<artifact>"
        )));
    };
    let Some((task, artifact)) = rest.rsplit_once('/') else {
        return Err(Error::invalid(format!(
            "`{target}` names no artifact: write <run>/<step>[/<index>]/<artifact>"
        )));
    };
    parse_task_id(task)?;
    let run = crate::meta::tags::existing_run(ds, flow, run)?;
    let a = ds.successful_task(flow, &run, task)?;
    a.manifest
        .as_ref()
        .and_then(|m| m.artifacts.get(artifact))
        .map(|b| b.digest)
        .ok_or_else(|| {
            Error::not_found(format!(
                "task {task} of run {run} has no artifact `{artifact}`"
            ))
        })
}

type Key = (String, String, Vec<u32>, u32);

fn key(t: &TaskRef) -> Key {
    (t.run.clone(), t.step.clone(), t.index.0.clone(), t.attempt)
}

/// The lineage of the value `digest` in flow `flow`.
///
/// ```no_run
/// # fn demo(ds: &flowlib::Datastore) -> flowlib::Result<()> {
/// let d = flowlib::client::resolve_value(ds, "Train", "latest/pick/best")?;
/// let l = flowlib::client::lineage(ds, "Train", &d)?;
/// for p in &l.produced_by {
///     println!("made by {}/{} from {} inputs", p.task.run, p.task.task_id(), p.inputs.len());
/// }
/// # Ok(()) }
/// ```
pub fn lineage(ds: &Datastore, flow: &str, digest: &Digest) -> Result<Lineage> {
    struct Seen {
        run: String,
        task: TaskRef,
        artifact: String,
        reused: bool,
        parents: Vec<TaskRef>,
    }
    // Every executed attempt's artifacts, to tell producers from carriers.
    let mut artifacts: HashMap<Key, BTreeMap<String, BlobRef>> = HashMap::new();
    let mut seen: Vec<Seen> = Vec::new();
    let mut params: BTreeMap<String, BTreeMap<String, serde_json::Value>> = BTreeMap::new();
    let mut initial_in = Vec::new();
    for (run, info) in ds.runs_checked(flow)? {
        let Ok(info) = info else { continue };
        let initial: BTreeSet<&str> = info
            .record
            .initial
            .iter()
            .filter(|(_, b)| b.digest == *digest)
            .map(|(n, _)| n.as_str())
            .collect();
        for n in &initial {
            initial_in.push((run.clone(), n.to_string()));
        }
        for a in ds.task_attempts_checked(flow, &run)?.attempts {
            let Some(m) = a.manifest else { continue };
            if !a.status.is_success() {
                continue;
            }
            for (name, b) in &m.artifacts {
                if b.digest == *digest
                    && !(initial.contains(name.as_str())
                        && a.step == m.step
                        && m.parents.is_empty())
                {
                    seen.push(Seen {
                        run: run.clone(),
                        task: a.source.clone(),
                        artifact: name.clone(),
                        reused: a.reused,
                        parents: m.parents.iter().collect(),
                    });
                }
            }
            if !a.reused {
                artifacts.insert(key(&a.source), m.artifacts);
            }
        }
        params.insert(run, info.record.params);
    }
    let mut produced_by = Vec::new();
    let mut producer_runs = BTreeSet::new();
    let mut rest = Vec::new();
    for s in seen {
        let carried = s.parents.iter().any(|p| {
            artifacts
                .get(&key(p))
                .and_then(|a| a.get(&s.artifact))
                .is_some_and(|b| b.digest == *digest)
        });
        let from_initial = initial_in
            .iter()
            .any(|(r, n)| *r == s.task.run && *n == s.artifact);
        if !s.reused && !carried && !from_initial {
            producer_runs.insert(s.run.clone());
            produced_by.push(Producer {
                params: params.get(&s.task.run).cloned().unwrap_or_default(),
                task: s.task,
                artifact: s.artifact,
                inputs: s.parents,
            });
        } else {
            rest.push(s);
        }
    }
    let mut appears_in: Vec<Appearance> = Vec::new();
    let mut listed = BTreeSet::new();
    for s in rest {
        if producer_runs.contains(&s.run) || !listed.insert(s.run.clone()) {
            continue;
        }
        appears_in.push(Appearance {
            run: s.run,
            task: s.task,
            artifact: s.artifact,
            reused: s.reused,
        });
    }
    let aliases = aliases::list(ds, flow)?
        .into_iter()
        .filter(|a| a.blobs.values().any(|b| b.digest == *digest))
        .collect();
    Ok(Lineage {
        digest: *digest,
        produced_by,
        initial_in,
        appears_in,
        aliases,
    })
}

/// What an alias points at, with the lineage of its value.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct AliasView {
    /// The alias's current record: the task attempt, the artifact and its blob.
    pub record: AliasRecord,
    /// The lineage of the artifact (of the first artifact of an end state).
    pub lineage: Lineage,
}

impl AliasView {
    /// The artifact's blob reference (digest and size), when the alias names an artifact.
    pub fn blob(&self) -> Option<BlobRef> {
        self.record
            .artifact
            .as_ref()
            .and_then(|a| self.record.blobs.get(a))
            .copied()
    }
}

impl Datastore {
    /// The current target of alias `name` of flow `flow`, checked to still exist, with its
    /// lineage. An unknown alias, or one whose task is deleted, is not found.
    ///
    /// ```no_run
    /// # fn demo(ds: &flowlib::Datastore) -> flowlib::Result<()> {
    /// let champion = ds.alias("Train", "champion")?;
    /// println!("{} = {:?}", champion.record.target(), champion.blob());
    /// for p in &champion.lineage.produced_by {
    ///     println!("produced by {}/{}", p.task.run, p.task.task_id());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn alias(&self, flow: &str, name: &str) -> Result<AliasView> {
        let record = aliases::current(self, flow, name)?;
        aliases::check_target(self, flow, &record)?;
        let digest = match &record.artifact {
            Some(a) => record.blobs.get(a).map(|b| b.digest),
            None => record.blobs.values().next().map(|b| b.digest),
        };
        let lineage = match digest {
            Some(d) => lineage(self, flow, &d)?,
            None => Lineage {
                digest: record.manifest.digest,
                produced_by: Vec::new(),
                initial_in: Vec::new(),
                appears_in: Vec::new(),
                aliases: vec![record.clone()],
            },
        };
        Ok(AliasView { record, lineage })
    }

    /// Every move of alias `name` of flow `flow`, oldest first.
    pub fn alias_history(&self, flow: &str, name: &str) -> Result<Vec<AliasRecord>> {
        let h = aliases::history(self, flow, name)?;
        if h.is_empty() {
            return Err(Error::not_found(format!(
                "flow {flow} has no alias `{name}`"
            )));
        }
        Ok(h)
    }

    /// Move alias `name` of flow `flow` to `target` (`<run>/<step>[/<index>]/<artifact>`,
    /// or a bare `<run>` for the task of its end step `end_step`). Two concurrent moves
    /// cannot both win: the loser gets an error naming the winner.
    pub fn set_alias(
        &self,
        flow: &str,
        name: &str,
        target: &str,
        end_step: &str,
    ) -> Result<AliasRecord> {
        let spec = aliases::TargetSpec::parse(target)?;
        crate::meta::tags::existing_run(self, flow, &spec.run)?;
        aliases::set(self, flow, name, &spec, end_step)
    }
}
