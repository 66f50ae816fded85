//! The queries both the runtime (resume, the task entry point) and the client ask of a
//! datastore: flows, runs, a run's committed attempts, one artifact.

use std::collections::BTreeMap;

use crate::error::{chain, Error, Result, Site};
use crate::meta::commit::{check_version, manifest_of, read_commit, read_pinned};
use crate::meta::{
    parse_task_id, task_id, validate_run_id, AttemptStatus, CommitRecord, Committed, Heartbeat,
    IndexPath, ReuseRecord, RunEnd, RunRecord, RunStatus, TaskManifest, TaskRef, HEARTBEAT_STALE,
};
use crate::store::cas::{self, What};
use crate::store::codec::{Tag, ViaSerde};
use crate::store::{layout, BlobRef, Datastore, Digest};

/// A run as listed by `runs`.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct RunInfo {
    /// The run record.
    pub record: RunRecord,
    /// The end record, once the run finished.
    pub end: Option<RunEnd>,
    /// The heartbeat of a run without an end record (absent in runs of older flowlib).
    #[serde(skip)]
    pub heartbeat: Option<Heartbeat>,
}

impl RunInfo {
    /// Succeeded, failed, or running (or killed before it could say). A run whose driver
    /// could not write its end record (a full disk) and said so in its heartbeat failed.
    pub fn status(&self) -> RunStatus {
        match &self.end {
            Some(e) => e.status,
            None if self.end_error().is_some() => RunStatus::Failed,
            None => RunStatus::Running,
        }
    }

    /// Why the run's end record could not be written, when its driver recorded that.
    pub fn end_error(&self) -> Option<&str> {
        self.heartbeat.as_ref()?.end_error.as_deref()
    }

    /// Whether a run without an end record is still alive, when that can be told: by its
    /// heartbeat (any host), else, for runs of older flowlib, by its pid (same host only).
    pub fn is_alive(&self) -> Option<bool> {
        if self.end.is_some() {
            return Some(false);
        }
        match &self.heartbeat {
            Some(h) => Some(heartbeat_alive(h)),
            None => pid_alive(&self.record.host, self.record.pid),
        }
    }
}

/// How long ago a heartbeat was written (`None`: its time is unreadable).
pub(crate) fn heartbeat_age(h: &Heartbeat) -> Option<std::time::Duration> {
    let t = chrono::DateTime::parse_from_rfc3339(&h.refreshed).ok()?;
    let age = chrono::Utc::now().signed_duration_since(t);
    // A writer's clock slightly ahead of ours: just written.
    Some(age.to_std().unwrap_or_default())
}

/// Whether the driver that writes heartbeat `h` is alive: it has not ended, it wrote the
/// heartbeat within [`HEARTBEAT_STALE`], and, on this host, its process exists (a killed
/// driver is dead at once, not only once its heartbeat is stale).
///
/// A run a workflow engine drives (`export argo`) has no driver to refresh its heartbeat:
/// it is alive until the engine's exit handler marks it ended (or writes its end record).
pub(crate) fn heartbeat_alive(h: &Heartbeat) -> bool {
    if h.orchestrator.is_some() {
        return !h.ended;
    }
    !h.ended
        && heartbeat_age(h).is_some_and(|a| a < HEARTBEAT_STALE)
        && pid_alive(&h.host, h.pid) != Some(false)
}

/// Whether process `pid` of `host` exists, when that can be told (same host).
fn pid_alive(host: &str, pid: u32) -> Option<bool> {
    if host != crate::meta::hostname() {
        return None;
    }
    // A zombie (killed, not yet reaped) is dead for our purposes.
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        return Some(!matches!(state, Some("Z") | Some("X") | None));
    }
    // SAFETY: kill with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    Some(rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// One committed task attempt of a run (executed in it, or reused from an origin).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TaskAttempt {
    /// Step name.
    pub step: String,
    /// Foreach index path.
    pub index: IndexPath,
    /// Where the attempt was executed (another run when reused).
    pub source: TaskRef,
    /// Outcome.
    pub status: AttemptStatus,
    /// The error of a failed or caught attempt.
    pub error: Option<String>,
    /// The manifest (absent for fenced attempts).
    pub manifest: Option<TaskManifest>,
    /// Digest and size of the manifest bytes, as pinned by the commit record.
    pub manifest_ref: Option<BlobRef>,
    /// Reused from an origin run.
    pub reused: bool,
    /// Taken from the cache of `#[cache]` steps: `source` is the task that computed it, in
    /// whichever run did.
    pub cached: bool,
    /// The metrics the attempt logged, summarized, from its commit record (empty for a
    /// reused task: its origin's commit record holds them; `client::search` reads it).
    pub metrics: std::collections::BTreeMap<String, crate::meta::metrics::MetricSummary>,
}

impl TaskAttempt {
    /// `step` or `step/2.5`.
    pub fn task_id(&self) -> String {
        task_id(&self.step, &self.index)
    }

    /// An attempt the run executed, by its commit record.
    fn executed(source: TaskRef, record: CommitRecord, manifest: Option<TaskManifest>) -> Self {
        TaskAttempt {
            step: source.step.clone(),
            index: source.index.clone(),
            source,
            status: record.status,
            error: record.error,
            manifest,
            manifest_ref: record.manifest,
            reused: false,
            cached: false,
            metrics: record.metrics,
        }
    }

    /// A task the run took from the cache.
    fn cache_hit(t: crate::meta::cache::CachedTask, manifest: TaskManifest) -> Self {
        TaskAttempt {
            step: t.step,
            index: t.index,
            source: t.source,
            status: t.status,
            error: None,
            manifest: Some(manifest),
            manifest_ref: Some(t.manifest),
            reused: false,
            cached: true,
            // The source's commit record holds them (`client::search` reads it).
            metrics: Default::default(),
        }
    }

    /// A task the run reused from its origin.
    fn reused(t: &crate::meta::ReusedTask, manifest: TaskManifest) -> Self {
        TaskAttempt {
            step: t.source.step.clone(),
            index: t.source.index.clone(),
            source: t.source.clone(),
            status: t.status,
            error: manifest.error.clone(),
            manifest: Some(manifest),
            manifest_ref: Some(t.manifest),
            reused: true,
            cached: false,
            metrics: Default::default(),
        }
    }
}

/// A record of a run that could not be read (a commit record, a manifest, a reuse record
/// or the run record itself): what readers of the run report and skip.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Damaged {
    /// The record's path in the datastore.
    pub path: String,
    /// The task it belongs to (`fit/2`), when that is known.
    pub task: Option<String>,
    /// The attempt it belongs to, when that is known.
    pub attempt: Option<u32>,
    /// Why it could not be read.
    pub reason: String,
}

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.task, self.attempt) {
            (Some(t), Some(a)) => write!(f, "task {t} attempt {a}: ")?,
            (Some(t), None) => write!(f, "task {t}: ")?,
            _ => {}
        }
        write!(f, "{}", self.reason)
    }
}

/// The committed attempts of a run that could be read, and the records that could not.
///
/// A damaged record never makes a task look successful: a task whose only successful
/// attempt has a damaged commit record or manifest is simply absent from `attempts`, so
/// `resume` runs it again.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Attempts {
    /// Every attempt whose records read and verified.
    pub attempts: Vec<TaskAttempt>,
    /// Every record that could not be read, in path order.
    pub damaged: Vec<Damaged>,
}

/// The damaged record an error describes (unreadable, corrupt, missing while named), or
/// the error itself when it is not about a record (the store cannot be reached).
fn damage(e: Error, task: Option<&str>, attempt: Option<u32>) -> Result<Damaged> {
    let Error::Metadata { path, .. } = &e else {
        return Err(e);
    };
    Ok(Damaged {
        path: path.clone(),
        task: task.map(str::to_string),
        attempt,
        reason: chain(&e),
    })
}

impl Datastore {
    /// Flows that have runs in this datastore.
    pub fn flows(&self) -> Result<Vec<String>> {
        self.list_dirs(&layout::flows())
    }

    /// Run ids of `flow`, oldest first.
    pub fn run_ids(&self, flow: &str) -> Result<Vec<String>> {
        self.list_dirs(&layout::runs(flow))
    }

    /// The most recent run of `flow`.
    pub fn latest_run(&self, flow: &str) -> Result<Option<String>> {
        // Only runs whose record exists count (a run id dir may hold just a late blob write).
        let ids = self.run_ids(flow)?;
        for id in ids.into_iter().rev() {
            if self.get_bytes(&layout::run_record(flow, &id))?.is_some() {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// The run id `id` names: `latest` for the flow's most recent run, else `id` itself,
    /// checked. Every command that takes a run id accepts `latest` through this.
    pub fn resolve_run(&self, flow: &str, id: &str) -> Result<String> {
        if id != "latest" {
            validate_run_id(id)?;
            return Ok(id.to_string());
        }
        self.latest_run(flow)?.ok_or_else(|| {
            Error::not_found(format!(
                "no runs of flow {flow} in {} (for `latest`)",
                self.url()
            ))
        })
    }

    /// Run record and end record of one run.
    pub fn run_info(&self, flow: &str, run: &str) -> Result<RunInfo> {
        validate_run_id(run)?;
        let record: RunRecord =
            self.get_json(&layout::run_record(flow, run))?
                .ok_or_else(|| {
                    Error::not_found(format!("no run `{run}` of flow {flow} in {}", self.url()))
                })?;
        let end = self.get_json(&layout::run_end(flow, run))?;
        let heartbeat = match end {
            Some(_) => None,
            None => self.heartbeat(flow, run)?,
        };
        Ok(RunInfo {
            record,
            end,
            heartbeat,
        })
    }

    /// The heartbeat of a run, if it has one. A damaged one counts as none: it must not
    /// keep a run listed as alive, nor hide the run.
    pub(crate) fn heartbeat(&self, flow: &str, run: &str) -> Result<Option<Heartbeat>> {
        match self.get_json(&layout::heartbeat(flow, run)) {
            Ok(h) => Ok(h),
            Err(Error::Metadata { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The heartbeat of a run whose driver is alive right now (no end record, heartbeat
    /// fresh); `None` if it is finished, dead, or never started its driver.
    pub(crate) fn live_heartbeat(&self, flow: &str, run: &str) -> Result<Option<Heartbeat>> {
        // The heartbeat first: a driver marks it ended only after writing its end record.
        let Some(h) = self.heartbeat(flow, run)? else {
            return Ok(None);
        };
        if !heartbeat_alive(&h) || self.get_bytes(&layout::run_end(flow, run))?.is_some() {
            return Ok(None);
        }
        Ok(Some(h))
    }

    /// Every run of `flow` whose records can be read, oldest first. A run whose run or end
    /// record is damaged is left out ([`runs_checked`](Self::runs_checked) lists it).
    pub fn runs(&self, flow: &str) -> Result<Vec<RunInfo>> {
        Ok(self
            .runs_checked(flow)?
            .into_iter()
            .filter_map(|(_, r)| r.ok())
            .collect())
    }

    /// Every run of `flow`, oldest first, by id: its records, or why they cannot be read.
    #[allow(clippy::type_complexity)]
    pub fn runs_checked(
        &self,
        flow: &str,
    ) -> Result<Vec<(String, std::result::Result<RunInfo, Damaged>)>> {
        let mut out = Vec::new();
        for id in self.run_ids(flow)? {
            match self.run_info(flow, &id) {
                Ok(i) => out.push((id, Ok(i))),
                Err(Error::NotFound(_)) => {}
                Err(e) => {
                    let d = damage(e, None, None)?;
                    out.push((id, Err(d)));
                }
            }
        }
        Ok(out)
    }

    /// Every committed attempt of a run that can be read, including tasks reused from its
    /// origin. Damaged records are skipped (a task whose successful attempt cannot be read
    /// counts as not run); [`task_attempts_checked`](Self::task_attempts_checked) lists them.
    ///
    /// A reuse record that is not the one the run record names (or is missing, or does not
    /// parse) is still an error here: what the run reused is then unknown, and guessing
    /// would misstate the run.
    pub fn task_attempts(&self, flow: &str, run: &str) -> Result<Vec<TaskAttempt>> {
        Ok(self.attempts_of(flow, run, true)?.attempts)
    }

    /// Every committed attempt of a run that can be read, including tasks reused from its
    /// origin, and every commit record, manifest or reuse record that cannot. Errors only
    /// when the store itself cannot be read.
    pub fn task_attempts_checked(&self, flow: &str, run: &str) -> Result<Attempts> {
        self.attempts_of(flow, run, false)
    }

    /// [`task_attempts`](Self::task_attempts), each handed to `each` as it is read instead
    /// of all returned at once: a resume of a run of 100,000 tasks holds what it keeps of
    /// each, not 100,000 manifests. Attempts come in the same order.
    pub(crate) fn for_each_attempt(
        &self,
        flow: &str,
        run: &str,
        each: &mut dyn FnMut(TaskAttempt),
    ) -> Result<()> {
        self.visit_attempts(flow, run, true, each).map(|_| ())
    }

    /// The attempts of a run; with `strict_reuse`, a damaged reuse record is an error.
    fn attempts_of(&self, flow: &str, run: &str, strict_reuse: bool) -> Result<Attempts> {
        let mut attempts = Vec::new();
        let damaged = self.visit_attempts(flow, run, strict_reuse, &mut |a| attempts.push(a))?;
        Ok(Attempts { attempts, damaged })
    }

    /// Hand every readable attempt of a run to `each` (in task order, then those taken
    /// from the cache, then those reused from the origin); return the damaged records.
    fn visit_attempts(
        &self,
        flow: &str,
        run: &str,
        strict_reuse: bool,
        each: &mut dyn FnMut(TaskAttempt),
    ) -> Result<Vec<Damaged>> {
        validate_run_id(run)?;
        let prefix = layout::tasks(flow, run);
        let mut commits: Vec<(String, IndexPath, u32)> = Vec::new();
        let mut cached_batches: Vec<u64> = Vec::new();
        for obj in self.list(&prefix)? {
            let Some(rest) = obj.rel.strip_prefix(&prefix) else {
                continue;
            };
            if let Some(seq) = layout::parse_cached_batch(rest) {
                cached_batches.push(seq);
                continue;
            }
            let Some((step, index, attempt)) = layout::parse_commit_file(rest) else {
                continue;
            };
            let Some(index) = IndexPath::parse(index) else {
                continue;
            };
            commits.push((step.to_string(), index, attempt));
        }
        commits.sort();
        let mut damaged = Vec::new();
        // One request per attempt (the record carries its manifest), many at once: on a
        // cloud store a run of 1,000 tasks waits ~1,000/16 round trips, not 1,000.
        let read = |(step, index, attempt): &(String, IndexPath, u32)| {
            let source = TaskRef {
                run: run.to_string(),
                step: step.clone(),
                index: index.clone(),
                attempt: *attempt,
            };
            let rel = layout::commit(flow, run, step, &index.dir_name(), *attempt);
            let read = self.get_json::<CommitRecord>(&rel).and_then(|r| match r {
                None => Ok(None),
                Some(record) => {
                    check_version(self, &rel, &record)?;
                    let m = manifest_of(self, flow, &source, &record)?;
                    Ok(Some((record, m)))
                }
            });
            Ok((source, read))
        };
        // A few thousand records at a time: what is read is handed on before the next.
        const CHUNK: usize = 4096;
        for chunk in commits.chunks(CHUNK) {
            for (source, read) in crate::store::par_io(chunk, read)? {
                let (id, attempt) = (source.task_id(), source.attempt);
                let (record, manifest) = match read {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(e) => {
                        damaged.push(damage(e, Some(&id), Some(attempt))?);
                        continue;
                    }
                };
                each(TaskAttempt::executed(source, record, manifest));
            }
        }
        cached_batches.sort_unstable();
        for seq in cached_batches {
            let rel = layout::cached_batch(flow, run, seq);
            let batch = match self.get_json::<crate::meta::cache::CachedBatch>(&rel) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    damaged.push(damage(e, None, None)?);
                    continue;
                }
            };
            for t in batch.tasks {
                let id = task_id(&t.step, &t.index);
                let manifest = match read_pinned(self, flow, &t.source, t.manifest) {
                    Ok(m) => m,
                    Err(e) => {
                        damaged.push(damage(e, Some(&id), Some(t.attempt))?);
                        continue;
                    }
                };
                each(TaskAttempt::cache_hit(t, manifest));
            }
        }
        let reuse = match self.reuse_record(flow, run) {
            Ok(r) => r,
            Err(e) if strict_reuse => return Err(e),
            Err(e) => {
                damaged.push(damage(e, None, None)?);
                None
            }
        };
        if let Some(reuse) = reuse {
            for t in reuse.tasks {
                let src = &t.source;
                let id = src.task_id();
                let manifest = match read_pinned(self, flow, src, t.manifest) {
                    Ok(m) => m,
                    Err(e) => {
                        damaged.push(damage(e, Some(&id), None)?);
                        continue;
                    }
                };
                each(TaskAttempt::reused(&t, manifest));
            }
        }
        Ok(damaged)
    }

    /// The reuse record of a resumed run: the one its run record names by digest (written
    /// before the run record, so it exists whenever the run record does), or for records
    /// of older flowlib, which name none, whatever `reuse.json` holds.
    pub(crate) fn reuse_record(&self, flow: &str, run: &str) -> Result<Option<ReuseRecord>> {
        let rel = layout::reuse(flow, run);
        // An unreadable run record is reported by whoever reads it for itself; the reuse
        // record is then read as older flowlib read it.
        let named = match self.get_json::<RunRecord>(&layout::run_record(flow, run)) {
            Ok(Some(r)) => r.resume.and_then(|r| r.reuse),
            Ok(None) | Err(_) => None,
        };
        let Some(bytes) = self.get_bytes(&rel)? else {
            return match named {
                Some(pin) => Err(Error::metadata(
                    self.path(&rel),
                    format!("missing: the run record names reuse record {}", pin.digest),
                )),
                None => Ok(None),
            };
        };
        if let Some(pin) = named {
            let found = Digest::of(&bytes);
            if found != pin.digest || bytes.len() as u64 != pin.size {
                return Err(Error::metadata(
                    self.path(&rel),
                    format!(
                        "is not the reuse record the run record names ({}, found {found})",
                        pin.digest
                    ),
                ));
            }
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::metadata(self.path(&rel), format!("invalid JSON: {e}")))
    }

    /// The successful attempt of task `task` (`step` or `step/2.5`) of a run.
    ///
    /// Reads that task only, never the whole run: its commit records (one read per
    /// attempt), and, for a task the run did not execute, its run's reuse record or batches
    /// of cache hits. A run of 100,000 tasks answers in a few requests.
    pub fn successful_task(&self, flow: &str, run: &str, task: &str) -> Result<TaskAttempt> {
        let (step, index) = parse_task_id(task)?;
        validate_run_id(run)?;
        // As `task_attempts` orders them, a reused task or a cache hit stands over any
        // attempt of the run's own (a run executes neither).
        if let Some(reuse) = self.reuse_record(flow, run)? {
            let mine =
                |t: &&crate::meta::ReusedTask| t.source.step == step && t.source.index == index;
            if let Some(t) = reuse
                .tasks
                .iter()
                .rev()
                .find(mine)
                .filter(|t| t.status.is_success())
            {
                let manifest = read_pinned(self, flow, &t.source, t.manifest)?;
                return Ok(TaskAttempt::reused(t, manifest));
            }
        }
        let cached_dir = format!("{}{}/", layout::tasks(flow, run), layout::CACHED_DIR);
        let mut batches: Vec<u64> = self
            .list(&cached_dir)?
            .iter()
            .filter_map(|o| o.rel.strip_prefix(&layout::tasks(flow, run)))
            .filter_map(layout::parse_cached_batch)
            .collect();
        batches.sort_unstable();
        for seq in batches.into_iter().rev() {
            let rel = layout::cached_batch(flow, run, seq);
            let Some(batch) = self.get_json::<crate::meta::cache::CachedBatch>(&rel)? else {
                continue;
            };
            let hit = batch
                .tasks
                .into_iter()
                .rev()
                .find(|t| t.step == step && t.index == index);
            if let Some(t) = hit {
                let manifest = read_pinned(self, flow, &t.source, t.manifest)?;
                return Ok(TaskAttempt::cache_hit(t, manifest));
            }
        }
        // Its own attempts, numbered from 0 without gaps: the last that succeeded. A
        // damaged record is passed over, as `task_attempts` does.
        let mut found = None;
        for attempt in 0..MAX_PROBED_ATTEMPTS {
            let source = TaskRef {
                run: run.to_string(),
                step: step.to_string(),
                index: index.clone(),
                attempt,
            };
            let (record, manifest) = match read_commit(self, flow, &source) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    damage(e, None, None)?;
                    continue;
                }
            };
            if record.status.is_success() && manifest.is_some() {
                found = Some(TaskAttempt::executed(source, record, manifest));
            }
        }
        found.ok_or_else(|| {
            Error::not_found(format!(
                "run {run} of flow {flow} has no successful task `{task}`"
            ))
        })
    }

    /// Read one artifact of a past run as `T`, without the flow's type (for tools,
    /// notebooks and tests). Only that artifact's blob is read, and it is verified.
    ///
    /// ```no_run
    /// let ds = flowlib::Datastore::open(".flowlib", flowlib::OpenMode::Existing)?;
    /// let run = ds.latest_run("Train")?.expect("a run");
    /// let best: Option<(f64, f64, (f64, f64))> = ds.artifact("Train", &run, "pick", "best")?;
    /// # Ok::<(), flowlib::Error>(())
    /// ```
    pub fn artifact<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        flow: &str,
        run: &str,
        task: &str,
        name: &str,
    ) -> Result<T> {
        let a = self.successful_task(flow, run, task)?;
        let m = a
            .manifest
            .as_ref()
            .expect("successful attempts have manifests");
        let blob = *m.artifacts.get(name).ok_or_else(|| {
            Error::not_found(format!("task {task} of run {run} has no artifact `{name}`"))
        })?;
        let what = What::new(name, Site::task(Some(run), task));
        let mut out: Option<T> = None;
        cas::load_decoded(self, blob, m.inline_of(&blob), &what, &mut |r| {
            out = Some((&Tag::<T>::NEW).decode_field(r)?);
            Ok(())
        })?;
        Ok(out.expect("decoded"))
    }
}

/// The successful attempt of each task (the one downstream steps used).
pub(crate) fn successful(attempts: Vec<TaskAttempt>) -> BTreeMap<(String, IndexPath), TaskAttempt> {
    let mut out: BTreeMap<(String, IndexPath), TaskAttempt> = BTreeMap::new();
    for a in attempts {
        if a.status.is_success() && a.manifest.is_some() {
            out.insert((a.step.clone(), a.index.clone()), a);
        }
    }
    out
}

/// More attempts than any retry policy makes.
const MAX_PROBED_ATTEMPTS: u32 = 1 << 16;

/// The successful attempt of one task of a run, read by probing its commit records
/// (attempts are numbered from 0 without gaps, so this is one read per attempt) and the
/// run's reuse record when given; never a listing of the run.
pub(crate) fn successful_attempt(
    ds: &Datastore,
    flow: &str,
    run: &str,
    step: &str,
    index: &IndexPath,
    reuse: Option<&ReuseRecord>,
) -> Result<Option<Committed>> {
    let mut found = None;
    for attempt in 0..MAX_PROBED_ATTEMPTS {
        let task = TaskRef {
            run: run.to_string(),
            step: step.to_string(),
            index: index.clone(),
            attempt,
        };
        let Some((record, manifest)) = read_commit(ds, flow, &task)? else {
            break;
        };
        if let (true, Some(m), Some(pin)) = (record.status.is_success(), manifest, record.manifest)
        {
            found = Some(Committed::of(task, pin, m));
        }
    }
    if found.is_some() {
        return Ok(found);
    }
    let reused = reuse
        .into_iter()
        .flat_map(|r| r.tasks.iter())
        .find(|t| t.source.step == step && t.source.index == *index);
    if let Some(t) = reused {
        let m = read_pinned(ds, flow, &t.source, t.manifest)?;
        return Ok(Some(Committed::of(t.source.clone(), t.manifest, m)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(host: &str, pid: u32, age: std::time::Duration, ended: bool) -> Heartbeat {
        let at = chrono::Utc::now() - chrono::Duration::from_std(age).unwrap();
        Heartbeat {
            host: host.to_string(),
            pid,
            refreshed: at.to_rfc3339(),
            ended,
            writer: String::new(),
            end_error: None,
            orchestrator: None,
        }
    }

    #[test]
    fn a_heartbeat_tells_whether_a_run_is_alive() {
        let s = std::time::Duration::from_secs;
        let me = crate::meta::hostname();
        let pid = std::process::id();
        assert!(
            heartbeat_alive(&beat(&me, pid, s(1), false)),
            "fresh, process here"
        );
        assert!(!heartbeat_alive(&beat(&me, pid, s(1), true)), "ended");
        assert!(
            !heartbeat_alive(&beat(&me, pid, HEARTBEAT_STALE + s(1), false)),
            "stale, even with the process there (a reused pid)"
        );
        assert!(
            heartbeat_alive(&beat("elsewhere.invalid", 1, s(5), false)),
            "fresh on another host: alive"
        );
        assert!(
            !heartbeat_alive(&beat("elsewhere.invalid", 1, HEARTBEAT_STALE + s(1), false)),
            "stale on another host: dead"
        );
        // A pid that cannot exist on this host: dead at once, however fresh the heartbeat.
        assert!(!heartbeat_alive(&beat(&me, i32::MAX as u32, s(0), false)));
        let mut h = beat(&me, pid, s(0), false);
        h.refreshed = "not a time".into();
        assert!(!heartbeat_alive(&h), "an unreadable time counts as stale");
    }
}
