//! Metrics: the numbers a step logs with `ctx.log_metric("val_loss", 0.31)` (or
//! `log_metric_at(.., epoch)`), stored per attempt, append-only and crash-safe.
//!
//! A step's points go into an in-memory buffer (one uncontended lock, no I/O, no allocation
//! per point once a name is known). A flusher thread, started on the first point, writes
//! what is pending as one numbered create-only chunk every [`FLUSH_EVERY`], or as soon as
//! [`CHUNK_POINTS`] points are pending; the attempt writes the rest when its step returns,
//! before it commits. So whatever was logged more than [`FLUSH_EVERY`] before a `kill -9`
//! is in the store, and no record is ever rewritten.
//!
//! A chunk is JSON lines, one point a line:
//! `{"n":"val_loss","v":0.31,"s":3,"t":1764600000000}` (name, value, optional step, Unix
//! milliseconds). JSON lines rather than a binary encoding: chunks stay readable with `jq`
//! and `grep`, a line is self-delimiting, and at about 50 bytes a point 100,000 points are
//! 5 MB, written off the step's thread. Non-finite values are stored as the strings
//! `"NaN"`, `"inf"` and `"-inf"` (JSON has no numbers for them).
//!
//! Each attempt's commit record carries a [`MetricSummary`] per metric (last value, its step,
//! min, max, count), so queries over many runs never read the points.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{chain, Error, Result};
use crate::meta::{IndexPath, TaskRef};
use crate::store::{layout, Datastore};

/// Pending points are written at the latest this long after the first of them was logged.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// A chunk is written as soon as this many points are pending.
pub(crate) const CHUNK_POINTS: usize = 20_000;

/// One logged value of a metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MetricPoint {
    /// The metric's name (`val_loss`).
    #[serde(rename = "n")]
    pub name: String,
    /// The value.
    #[serde(rename = "v", with = "float")]
    pub value: f64,
    /// The step (epoch, iteration) it was logged at, with `log_metric_at`.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    /// When it was logged: milliseconds since the Unix epoch.
    #[serde(rename = "t")]
    pub at_ms: u64,
}

/// What an attempt's commit record keeps of one metric: enough to search and compare runs
/// without reading the points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MetricSummary {
    /// The last value logged.
    #[serde(with = "float")]
    pub last: f64,
    /// The step of the last value, when it was logged with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<u64>,
    /// The smallest value logged (NaN values are left out; NaN if all were NaN).
    #[serde(with = "float")]
    pub min: f64,
    /// The largest value logged (NaN values are left out; NaN if all were NaN).
    #[serde(with = "float")]
    pub max: f64,
    /// How many points were logged.
    pub count: u64,
    /// When the last value was logged: milliseconds since the Unix epoch.
    #[serde(default)]
    pub last_at_ms: u64,
}

impl MetricSummary {
    fn first(value: f64, step: Option<u64>, at_ms: u64) -> MetricSummary {
        MetricSummary {
            last: value,
            last_step: step,
            min: value,
            max: value,
            count: 1,
            last_at_ms: at_ms,
        }
    }

    fn add(&mut self, value: f64, step: Option<u64>, at_ms: u64) {
        self.last = value;
        self.last_step = step;
        self.last_at_ms = at_ms;
        self.count += 1;
        if !value.is_nan() {
            if self.min.is_nan() || value < self.min {
                self.min = value;
            }
            if self.max.is_nan() || value > self.max {
                self.max = value;
            }
        }
    }
}

/// The summaries of a list of points, by metric name (what the commit record holds).
pub(crate) fn summarize(points: &[MetricPoint]) -> BTreeMap<String, MetricSummary> {
    let mut out: BTreeMap<String, MetricSummary> = BTreeMap::new();
    for p in points {
        match out.get_mut(&p.name) {
            Some(s) => s.add(p.value, p.step, p.at_ms),
            None => {
                out.insert(
                    p.name.clone(),
                    MetricSummary::first(p.value, p.step, p.at_ms),
                );
            }
        }
    }
    out
}

/// Whether `name` can name a metric: ASCII letters, digits, `_`, `-`, `/` and `.`, not
/// empty, at most 200 bytes (so `metrics.<name>` reads unambiguously in a `--where` filter).
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'/' | b'.'))
}

/// Serde for floats that keeps NaN and the infinities (as strings).
mod float {
    use super::*;

    pub(super) fn serialize<S: Serializer>(v: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if *v > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Num(f64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Num(v) => Ok(v),
            Repr::Text(t) => match t.as_str() {
                "NaN" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                other => Err(serde::de::Error::custom(format!(
                    "`{other}` is not a metric value"
                ))),
            },
        }
    }
}

/// The store prefix of attempt `task`'s metric chunks.
pub(crate) fn prefix(flow: &str, task: &TaskRef) -> String {
    layout::metrics(
        flow,
        &task.run,
        &task.step,
        &task.index.dir_name(),
        task.attempt,
    )
}

/// The chunks of attempt `task`, in order: (number, store path).
pub(crate) fn chunks(ds: &Datastore, flow: &str, task: &TaskRef) -> Result<Vec<(u64, String)>> {
    let mut out: Vec<(u64, String)> = ds
        .list(&prefix(flow, task))?
        .into_iter()
        .filter_map(|l| {
            let seq = layout::parse_metric_chunk(l.rel.rsplit('/').next()?)?;
            Some((seq, l.rel))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Parse one chunk's bytes; `path` names it in errors.
pub(crate) fn parse_chunk(bytes: &[u8], path: &str) -> Result<Vec<MetricPoint>> {
    let mut out = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let p: MetricPoint = serde_json::from_slice(line).map_err(|e| {
            Error::metadata(
                path.to_string(),
                format!("line {}: invalid metric point: {e}", i + 1),
            )
        })?;
        out.push(p);
    }
    Ok(out)
}

/// Every point attempt `task` of flow `flow` logged, in the order it logged them.
///
/// An attempt that logged nothing has none. A chunk that cannot be parsed is an error that
/// names its path.
///
/// ```no_run
/// # fn demo(ds: &flowlib::Datastore, task: &flowlib::TaskRef) -> flowlib::Result<()> {
/// for p in flowlib::read_metrics(ds, "Train", task)? {
///     println!("{} {:?} {}", p.name, p.step, p.value);
/// }
/// # Ok(()) }
/// ```
pub fn read_metrics(ds: &Datastore, flow: &str, task: &TaskRef) -> Result<Vec<MetricPoint>> {
    let mut out = Vec::new();
    for (_, rel) in chunks(ds, flow, task)? {
        // Listed, so it exists: a chunk is never deleted while its run exists.
        if let Some(bytes) = ds.get_bytes(&rel)? {
            out.extend(parse_chunk(&bytes, ds.path(&rel).as_ref())?);
        }
    }
    Ok(out)
}

/// Chunks by attempt: (step, index, attempt) → (attempt, its chunks).
type ByTask = BTreeMap<(String, Vec<u32>, u32), (TaskRef, Vec<(u64, String)>)>;

/// The attempts of run `run` that logged metrics, each with its points, in task order.
///
/// ```no_run
/// # fn demo(ds: &flowlib::Datastore) -> flowlib::Result<()> {
/// for (task, points) in flowlib::read_run_metrics(ds, "Train", "20260101T000000Z-1a2b")? {
///     println!("{}@{}: {} points", task.task_id(), task.attempt, points.len());
/// }
/// # Ok(()) }
/// ```
pub fn read_run_metrics(
    ds: &Datastore,
    flow: &str,
    run: &str,
) -> Result<Vec<(TaskRef, Vec<MetricPoint>)>> {
    let root = layout::run_metrics(flow, run);
    let mut by_task: ByTask = BTreeMap::new();
    for l in ds.list(&root)? {
        let Some(rest) = l.rel.strip_prefix(&root) else {
            continue;
        };
        let Some((step, index, attempt, seq)) = layout::parse_metric_path(rest) else {
            continue;
        };
        let Some(index) = IndexPath::parse(index) else {
            continue;
        };
        let task = TaskRef {
            run: run.to_string(),
            step: step.to_string(),
            index,
            attempt,
        };
        let key = (task.step.clone(), task.index.0.clone(), attempt);
        by_task
            .entry(key)
            .or_insert_with(|| (task, Vec::new()))
            .1
            .push((seq, l.rel.clone()));
    }
    let mut out = Vec::new();
    for (_, (task, mut chunks)) in by_task {
        chunks.sort();
        let mut points = Vec::new();
        for (_, rel) in chunks {
            if let Some(bytes) = ds.get_bytes(&rel)? {
                points.extend(parse_chunk(&bytes, ds.path(&rel).as_ref())?);
            }
        }
        out.push((task, points));
    }
    Ok(out)
}

/// The metric summaries of every successful attempt of run `run` (reused ones included,
/// from their origin's commit records), read from commit records only: no manifest, no
/// point. (task, summaries by name.)
pub(crate) fn run_summaries(
    ds: &Datastore,
    flow: &str,
    run: &str,
) -> Result<Vec<(TaskRef, BTreeMap<String, MetricSummary>)>> {
    use crate::meta::CommitRecord;
    let prefix = layout::tasks(flow, run);
    let mut out = Vec::new();
    let read = |rel: &str| -> Result<Option<CommitRecord>> {
        // A damaged commit record is reported by `verify`; search skips it.
        Ok(ds.get_json::<CommitRecord>(rel).unwrap_or(None))
    };
    for l in ds.list(&prefix)? {
        let Some((step, index, attempt)) = l
            .rel
            .strip_prefix(&prefix)
            .and_then(layout::parse_commit_file)
        else {
            continue;
        };
        let Some(index) = IndexPath::parse(index) else {
            continue;
        };
        let Some(r) = read(&l.rel)? else { continue };
        if r.status.is_success() && !r.metrics.is_empty() {
            out.push((TaskRef::new(run, step, &index.0, attempt), r.metrics));
        }
    }
    if let Ok(Some(reuse)) = ds.reuse_record(flow, run) {
        for t in reuse.tasks {
            let s = &t.source;
            let rel = layout::commit(flow, &s.run, &s.step, &s.index.dir_name(), s.attempt);
            if let Some(r) = read(&rel)? {
                if !r.metrics.is_empty() {
                    out.push((s.clone(), r.metrics));
                }
            }
        }
    }
    Ok(out)
}

/// The points a step has logged and not yet written.
#[derive(Default)]
struct Pending {
    /// Metric names by id, in first-logged order.
    names: Vec<String>,
    ids: HashMap<String, u32>,
    /// (name id, value, step, Unix ms).
    points: Vec<(u32, f64, Option<u64>, u64)>,
    since: Option<Instant>,
    summaries: Vec<MetricSummary>,
    stop: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The part of the writer only one thread at a time uses: the chunk numbers.
struct Writer {
    ds: Datastore,
    prefix: String,
    seq: u64,
    names: Vec<String>,
    warned: bool,
}

impl Writer {
    fn write(&mut self, points: &[(u32, f64, Option<u64>, u64)], names: &[String]) {
        if points.is_empty() {
            return;
        }
        self.names.extend_from_slice(&names[self.names.len()..]);
        let mut buf = Vec::with_capacity(points.len() * 56);
        for &(id, value, step, at_ms) in points {
            let p = PointRef {
                name: &self.names[id as usize],
                value,
                step,
                at_ms,
            };
            serde_json::to_writer(&mut buf, &p).expect("a metric point serializes");
            buf.push(b'\n');
        }
        let rel = layout::metric_chunk(&self.prefix, self.seq);
        self.seq += 1;
        if let Err(e) = self.ds.create(&rel, Bytes::from(buf)) {
            if !self.warned {
                self.warned = true;
                eprintln!(
                    "flowlib: warning: could not store metrics at {}: {} (the task goes on)",
                    self.ds.path(&rel),
                    chain(&e)
                );
            }
        }
    }
}

/// [`MetricPoint`] borrowing its name, for writing.
#[derive(Serialize)]
struct PointRef<'a> {
    #[serde(rename = "n")]
    name: &'a str,
    #[serde(rename = "v", with = "float")]
    value: f64,
    #[serde(rename = "s", skip_serializing_if = "Option::is_none")]
    step: Option<u64>,
    #[serde(rename = "t")]
    at_ms: u64,
}

/// One attempt's metric log, being written (held by its `Ctx`).
pub(crate) struct MetricLog {
    shared: Arc<Shared>,
    writer: Arc<Mutex<Writer>>,
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for MetricLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricLog").finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl MetricLog {
    /// A log for attempt `task` of flow `flow`. Nothing is written, and no thread started,
    /// until the first point.
    pub(crate) fn new(ds: &Datastore, flow: &str, task: &TaskRef) -> MetricLog {
        MetricLog {
            shared: Arc::new(Shared {
                pending: Mutex::new(Pending::default()),
                wake: Condvar::new(),
            }),
            writer: Arc::new(Mutex::new(Writer {
                ds: ds.clone(),
                prefix: prefix(flow, task),
                seq: 0,
                names: Vec::new(),
                warned: false,
            })),
            flusher: Mutex::new(None),
        }
    }

    /// Add a point. Panics when `name` is not a valid metric name ([`valid_name`]).
    pub(crate) fn log(&self, name: &str, value: f64, step: Option<u64>) {
        let at = now_ms();
        let mut g = self.shared.lock();
        let id = match g.ids.get(name) {
            Some(&id) => {
                g.summaries[id as usize].add(value, step, at);
                id
            }
            None => {
                assert!(
                    valid_name(name),
                    "`{name}` is not a valid metric name: use ASCII letters, digits, `_`, `-`, `/` and `.`"
                );
                let id = g.names.len() as u32;
                g.names.push(name.to_string());
                g.ids.insert(name.to_string(), id);
                g.summaries.push(MetricSummary::first(value, step, at));
                id
            }
        };
        g.points.push((id, value, step, at));
        let first = g.since.is_none();
        if first {
            g.since = Some(Instant::now());
        }
        let full = g.points.len() >= CHUNK_POINTS;
        drop(g);
        if first {
            self.start_flusher();
        }
        if full {
            self.shared.wake.notify_one();
        }
    }

    fn start_flusher(&self) {
        let mut f = self.flusher.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_some() {
            return;
        }
        let (shared, writer) = (self.shared.clone(), self.writer.clone());
        *f = Some(
            std::thread::Builder::new()
                .name("flowlib-metrics".into())
                .spawn(move || flusher(&shared, &writer))
                .expect("spawn the metrics flusher thread"),
        );
    }

    /// Stop the flusher, write everything pending, and return the summaries by name.
    pub(crate) fn finish(&self) -> BTreeMap<String, MetricSummary> {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self
            .flusher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = t.join();
        }
        let mut g = self.shared.lock();
        let points = std::mem::take(&mut g.points);
        g.since = None;
        self.writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write(&points, &g.names);
        g.names
            .iter()
            .cloned()
            .zip(g.summaries.iter().cloned())
            .collect()
    }
}

impl Drop for MetricLog {
    /// Stop the flusher (without writing: `finish` is the attempt's last write).
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self
            .flusher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = t.join();
        }
    }
}

/// The flusher thread: write what is pending when it is full or old enough, until stopped.
fn flusher(shared: &Shared, writer: &Mutex<Writer>) {
    let mut g = shared.lock();
    loop {
        if g.stop {
            return;
        }
        let due =
            g.points.len() >= CHUNK_POINTS || g.since.is_some_and(|t| t.elapsed() >= FLUSH_EVERY);
        if due {
            let points = std::mem::take(&mut g.points);
            g.since = None;
            let names = g.names.clone();
            // Lock order: the writer is taken before the pending buffer is released, so
            // chunks are written in the order their points were logged.
            let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
            drop(g);
            w.write(&points, &names);
            drop(w);
            g = shared.lock();
            continue;
        }
        let wait = match g.since {
            Some(t) => FLUSH_EVERY.saturating_sub(t.elapsed()),
            None => FLUSH_EVERY,
        };
        g = shared
            .wake
            .wait_timeout(g, wait.max(Duration::from_millis(1)))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpenMode;

    fn task() -> TaskRef {
        TaskRef {
            run: "r1".into(),
            step: "fit".into(),
            index: IndexPath(vec![2]),
            attempt: 0,
        }
    }

    #[test]
    fn points_round_trip_in_order_with_summaries() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Datastore::open(dir.path().to_str().unwrap(), OpenMode::Create).unwrap();
        let log = MetricLog::new(&ds, "F", &task());
        let n = CHUNK_POINTS * 2 + 17;
        for i in 0..n {
            log.log("loss", 1.0 / (i as f64 + 1.0), Some(i as u64));
            if i % 1000 == 0 {
                log.log("acc", i as f64, None);
            }
        }
        log.log("odd", f64::NAN, None);
        log.log("odd", f64::NEG_INFINITY, None);
        let s = log.finish();
        assert_eq!(s["loss"].count, n as u64);
        assert_eq!(s["loss"].last_step, Some(n as u64 - 1));
        assert_eq!(s["loss"].max, 1.0);
        assert_eq!(s["acc"].count, 41);
        assert_eq!(s["odd"].last, f64::NEG_INFINITY);
        assert!(chunks(&ds, "F", &task()).unwrap().len() >= 2);
        let points = read_metrics(&ds, "F", &task()).unwrap();
        assert_eq!(points.len(), n + 41 + 2);
        let loss: Vec<u64> = points
            .iter()
            .filter(|p| p.name == "loss")
            .map(|p| p.step.unwrap())
            .collect();
        assert_eq!(loss, (0..n as u64).collect::<Vec<_>>());
        assert!(points[points.len() - 2].value.is_nan());
        let again = summarize(&points);
        assert_eq!(again["loss"], s["loss"]);
        assert_eq!(again["acc"], s["acc"]);
        let run = read_run_metrics(&ds, "F", "r1").unwrap();
        assert_eq!(run.len(), 1);
        assert_eq!(run[0].0, task());
        assert_eq!(run[0].1.len(), points.len());
    }

    #[test]
    fn pending_points_reach_the_store_without_the_attempt_ending() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Datastore::open(dir.path().to_str().unwrap(), OpenMode::Create).unwrap();
        let log = MetricLog::new(&ds, "F", &task());
        log.log("loss", 0.5, Some(1));
        let t0 = Instant::now();
        while read_metrics(&ds, "F", &task()).unwrap().is_empty() {
            assert!(t0.elapsed() < Duration::from_secs(30), "never flushed");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The log is dropped without finish (a crash): what was flushed stays readable.
        drop(log);
        let p = read_metrics(&ds, "F", &task()).unwrap();
        assert_eq!(
            (p[0].name.as_str(), p[0].value, p[0].step),
            ("loss", 0.5, Some(1))
        );
    }

    #[test]
    fn a_damaged_chunk_is_an_error_naming_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Datastore::open(dir.path().to_str().unwrap(), OpenMode::Create).unwrap();
        let rel = layout::metric_chunk(&prefix("F", &task()), 0);
        ds.create(
            &rel,
            Bytes::from_static(b"{\"n\":\"a\",\"v\":1,\"t\":1}\nnot json\n"),
        )
        .unwrap();
        let e = read_metrics(&ds, "F", &task()).unwrap_err().to_string();
        assert!(e.contains("00000000.jsonl") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("val_loss") && valid_name("train/loss.top-1"));
        assert!(!valid_name("") && !valid_name("a b") && !valid_name("a\"b"));
    }
}
