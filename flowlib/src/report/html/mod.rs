//! The HTML run report (`report <run>`): one self-contained file (inline CSS, JS and SVG,
//! nothing fetched to view it) with the graph and each step's status, a timeline of the
//! attempts, per-task details (attempts, errors, log tails, artifacts, resources, cards),
//! and the run's parameters.
//!
//! [`RunReport::build`] reads the run from the store into a model; `render` turns it into
//! HTML. Per-task data goes into the page as compact JSON that the inline script pages
//! through (50 rows at a time), so a 10,000-task foreach stays a few MB and opens fast;
//! the per-step summaries, failures and graph are plain HTML.

mod render;
mod svg;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::error::{chain, Result};
use crate::flow::card::{CardItem, CardRecord};
use crate::flow::Graph;
use crate::meta::query::Damaged;
use crate::meta::{logs, AttemptStatus, IndexPath, RunInfo, TaskAttempt, TaskRef};
use crate::report::RunState;
use crate::store::{layout, Datastore};

/// Log tails are read for every attempt of a run with at most this many attempts, and
/// for failed attempts only in larger runs (a 10,000-task report stays small).
const ALL_TAILS_UP_TO: usize = 500;
/// Lines, and bytes, of a log tail.
const TAIL_LINES: usize = 20;
const TAIL_BYTES: usize = 4096;

/// A run, as the HTML report shows it.
#[derive(Debug)]
pub(crate) struct RunReport {
    pub(crate) info: RunInfo,
    pub(crate) state: RunState,
    pub(crate) steps: Vec<StepSummary>,
    /// Every committed attempt, in step order then task then attempt.
    pub(crate) attempts: Vec<AttemptRow>,
    /// Attempt index (into `attempts`) to its card.
    pub(crate) cards: BTreeMap<usize, Vec<CardItem>>,
    /// Records of the run that could not be read.
    pub(crate) damaged: Vec<Damaged>,
    /// Cards or logs that could not be read (the report shows what it could).
    pub(crate) warnings: Vec<String>,
    /// The run's tags and notes (`tag`, `run --tag`).
    pub(crate) tags: crate::meta::tags::Tags,
    /// One chart per metric name.
    pub(crate) metrics: Vec<MetricChart>,
    /// `--task`: the step or task whose attempts the report lists (all when `None`).
    pub(crate) only: Option<String>,
    /// Milliseconds from the run's start to the last attempt's end (or the run's end).
    pub(crate) span_ms: f64,
}

/// The chart of one metric: its points per attempt when few attempts logged it, else the
/// last value of each attempt by task (a 10,000-task foreach is one line of 10,000 points).
#[derive(Debug, Clone)]
pub(crate) struct MetricChart {
    pub(crate) name: String,
    /// What the chart shows (`points by step`, `last value per task`).
    pub(crate) what: String,
    pub(crate) series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Point series are read (one listing plus one read per chunk) only when at most this many
/// attempts logged metrics; beyond, charts come from the commit records' summaries.
const POINT_CHARTS_UP_TO: usize = 50;
/// Points drawn per series at most (every k-th point, and the last).
const MAX_CHART_POINTS: usize = 2000;

/// One step: its shape, status and what its tasks did.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StepSummary {
    pub(crate) name: String,
    pub(crate) next: Vec<String>,
    pub(crate) foreach: Option<String>,
    pub(crate) joins: Option<String>,
    pub(crate) status: &'static str,
    pub(crate) tasks: usize,
    pub(crate) ok: usize,
    pub(crate) failed: usize,
    pub(crate) caught: usize,
    pub(crate) reused: usize,
    /// Attempts beyond each task's first.
    pub(crate) retries: usize,
    /// Step-body time of the successful attempts: min, median, max (ms).
    pub(crate) step_ms: Option<(f64, f64, f64)>,
    /// `#[resources]`, `#[retry]`, `#[timeout]`, when the report's flow binary ran this graph.
    pub(crate) attrs: Option<String>,
}

/// One attempt of one task.
#[derive(Debug, Clone)]
pub(crate) struct AttemptRow {
    pub(crate) step: usize,
    pub(crate) index: IndexPath,
    pub(crate) attempt: u32,
    pub(crate) status: AttemptStatus,
    pub(crate) reused: bool,
    /// Taken from the cache of a `#[cache]` step (it ran in another run, or earlier).
    pub(crate) cached: bool,
    /// Where a reused attempt ran (the run), or a cached one (`<run> task <task>`).
    pub(crate) source_run: Option<String>,
    pub(crate) error: Option<String>,
    /// Start and end, ms from the run's start (absent for fenced attempts: no manifest).
    pub(crate) start_ms: Option<f64>,
    pub(crate) end_ms: Option<f64>,
    pub(crate) load_ms: f64,
    pub(crate) body_ms: f64,
    pub(crate) store_ms: f64,
    pub(crate) host: String,
    /// Name, digest, size.
    pub(crate) artifacts: Vec<(String, String, u64)>,
    /// Last lines of stdout and stderr, when they were stored and read.
    pub(crate) logs: Option<[String; 2]>,
    /// The attempt's metric summaries (last, min, max, count), by name.
    pub(crate) metrics: BTreeMap<String, crate::meta::metrics::MetricSummary>,
    /// Row of the timeline within its step (attempts that overlap get different lanes).
    pub(crate) lane: usize,
}

impl AttemptRow {
    pub(crate) fn task_id(&self, steps: &[StepSummary]) -> String {
        crate::meta::task_id(&steps[self.step].name, &self.index)
    }
}

/// Milliseconds between two RFC 3339 times.
fn ms_between(from: &chrono::DateTime<chrono::FixedOffset>, to: &str) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(to).ok()?;
    Some(t.signed_duration_since(*from).num_microseconds()? as f64 / 1000.0)
}

impl RunReport {
    /// Read run `run` of `flow` from `ds`. `graph`: the flow binary's graph, used for each
    /// step's resources when it is the graph that ran (same digest).
    /// `only`: list only the attempts of this step (`work`) or task (`work/3`); the step
    /// summaries still count every task.
    pub(crate) fn build(
        ds: &Datastore,
        flow: &str,
        run: &str,
        graph: Option<&Graph>,
        only: Option<&str>,
    ) -> Result<RunReport> {
        let info = ds.run_info(flow, run)?;
        let state = RunState::of(&info);
        let checked = ds.task_attempts_checked(flow, run)?;
        let graph = graph.filter(|g| g.digest().to_string() == info.record.graph_digest);
        let started = chrono::DateTime::parse_from_rfc3339(&info.record.started).ok();

        let mut steps: Vec<StepSummary> = info
            .record
            .graph
            .iter()
            .map(|s| StepSummary {
                name: s.name.clone(),
                next: s.next.clone(),
                foreach: s.foreach.clone(),
                joins: s.joins.clone(),
                status: "",
                tasks: 0,
                ok: 0,
                failed: 0,
                caught: 0,
                reused: 0,
                retries: 0,
                step_ms: None,
                attrs: graph.and_then(|g| g.step(&s.name)).map(step_attrs),
            })
            .collect();
        let step_of: HashMap<String, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();

        let mut attempts = Vec::with_capacity(checked.attempts.len());
        let mut sources: Vec<TaskRef> = Vec::with_capacity(checked.attempts.len());
        let mut warnings = Vec::new();
        let many = checked.attempts.len() > ALL_TAILS_UP_TO;
        for a in checked.attempts {
            let step = match step_of.get(&a.step) {
                Some(&i) => i,
                None => {
                    // A record of a step the run record does not list (an older graph shape).
                    steps.push(unlisted_step(&a.step));
                    steps.len() - 1
                }
            };
            let row = attempt_row(ds, flow, &a, step, started.as_ref(), many, &mut warnings);
            sources.push(a.source);
            attempts.push(row);
        }
        // Step order, then task, then attempt (the query lists them by step name).
        let mut order: Vec<usize> = (0..attempts.len()).collect();
        order.sort_by(|&x, &y| {
            let (a, b) = (&attempts[x], &attempts[y]);
            (a.step, &a.index.0, a.attempt).cmp(&(b.step, &b.index.0, b.attempt))
        });
        let mut attempts: Vec<AttemptRow> = order.iter().map(|&i| attempts[i].clone()).collect();
        let sources: Vec<TaskRef> = order.iter().map(|&i| sources[i].clone()).collect();
        assign_lanes(&mut attempts);
        summarize(&mut steps, &attempts, state);

        let (attempts, sources) = match only {
            None => (attempts, sources),
            Some(want) => {
                let keep: Vec<bool> = attempts
                    .iter()
                    .map(|a| steps[a.step].name == want || a.task_id(&steps) == want)
                    .collect();
                if !keep.contains(&true) {
                    return Err(crate::error::Error::not_found(format!(
                        "run {run} of flow {flow} has no attempts of step or task `{want}`"
                    )));
                }
                (pick(attempts, &keep), pick(sources, &keep))
            }
        };
        let cards = read_cards(ds, flow, run, &sources, &mut warnings)?;
        let metrics = metric_charts(ds, flow, run, &steps, &attempts, &mut warnings);
        let tags = ds.run_tags(flow, run).unwrap_or_else(|e| {
            warnings.push(format!("tags of run {run}: {}", chain(&e)));
            Default::default()
        });
        let end_ms = info
            .end
            .as_ref()
            .map(|e| e.duration_ms as f64)
            .unwrap_or(0.0);
        let span_ms = attempts
            .iter()
            .filter_map(|a| a.end_ms)
            .fold(end_ms, f64::max);
        Ok(RunReport {
            info,
            state,
            steps,
            attempts,
            cards,
            damaged: checked.damaged,
            warnings,
            only: only.map(str::to_string),
            metrics,
            tags,
            span_ms,
        })
    }

    /// The report as one self-contained HTML page.
    pub(crate) fn render_html(&self) -> String {
        render::page(self)
    }
}

/// The items of `v` whose `keep` is true.
fn pick<T>(v: Vec<T>, keep: &[bool]) -> Vec<T> {
    v.into_iter()
        .zip(keep)
        .filter_map(|(x, k)| k.then_some(x))
        .collect()
}

fn unlisted_step(name: &str) -> StepSummary {
    StepSummary {
        name: name.to_string(),
        next: Vec::new(),
        foreach: None,
        joins: None,
        status: "",
        tasks: 0,
        ok: 0,
        failed: 0,
        caught: 0,
        reused: 0,
        retries: 0,
        step_ms: None,
        attrs: None,
    }
}

/// `cpu 2, memory 4 GiB; retry 3; timeout 10s`.
fn step_attrs(s: &crate::flow::Step) -> String {
    let r = &s.resources;
    let mut parts = vec![format!("cpu {}", r.cpu.max(1))];
    if let Some(m) = r.memory {
        parts.push(format!("memory {}", crate::flow::graph::format_bytes(m)));
    }
    if r.gpu > 0 {
        parts.push(format!("gpu {}", r.gpu));
    }
    let mut out = parts.join(", ");
    if let Some(rp) = s.retry {
        out.push_str(&format!("; retry {} (delay {} ms)", rp.times, rp.delay_ms));
    }
    if let Some(t) = s.timeout_ms {
        out.push_str(&format!("; timeout {} ms", t));
    }
    out
}

fn attempt_row(
    ds: &Datastore,
    flow: &str,
    a: &TaskAttempt,
    step: usize,
    started: Option<&chrono::DateTime<chrono::FixedOffset>>,
    many: bool,
    warnings: &mut Vec<String>,
) -> AttemptRow {
    let m = a.manifest.as_ref();
    let at = |t: &str| started.and_then(|s| ms_between(s, t));
    // A reused or cached attempt ran before this run: it has no place on this run's
    // timeline.
    let elsewhere = a.reused || a.cached;
    let (start_ms, end_ms) = match m {
        Some(m) if !elsewhere => (at(&m.started), at(&m.finished)),
        _ => (None, None),
    };
    let failed = !a.status.is_success();
    let logs = match m {
        Some(m) if m.logs.is_some() && !elsewhere && (!many || failed) => {
            match log_tails(ds, flow, &a.source) {
                Ok(t) => Some(t),
                Err(e) => {
                    warnings.push(format!(
                        "logs of task {} attempt {}: {}",
                        a.task_id(),
                        a.source.attempt,
                        chain(&e)
                    ));
                    None
                }
            }
        }
        _ => None,
    };
    AttemptRow {
        step,
        index: a.index.clone(),
        attempt: a.source.attempt,
        status: a.status,
        reused: a.reused,
        cached: a.cached,
        source_run: if a.cached {
            Some(format!("{} task {}", a.source.run, a.source.task_id()))
        } else {
            a.reused.then(|| a.source.run.clone())
        },
        error: a.error.clone(),
        start_ms,
        end_ms,
        load_ms: m.map_or(0.0, |m| m.timings.load_ms),
        body_ms: m.map_or(0.0, |m| m.timings.step_ms),
        store_ms: m.map_or(0.0, |m| m.timings.store_ms),
        host: m.map(|m| m.host.clone()).unwrap_or_default(),
        artifacts: m
            .map(|m| {
                m.artifacts
                    .iter()
                    .map(|(k, b)| (k.clone(), b.digest.to_string(), b.size))
                    .collect()
            })
            .unwrap_or_default(),
        logs,
        metrics: a.metrics.clone(),
        lane: 0,
    }
}

/// The last lines of an attempt's stdout and stderr.
fn log_tails(ds: &Datastore, flow: &str, task: &TaskRef) -> Result<[String; 2]> {
    let mut out: [String; 2] = Default::default();
    for (i, stream) in logs::STREAMS.iter().enumerate() {
        let (_, bytes) = logs::read_from(ds, flow, task, stream, 0)?;
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        let mut tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
        if tail.len() > TAIL_BYTES {
            let mut cut = tail.len() - TAIL_BYTES;
            while !tail.is_char_boundary(cut) {
                cut += 1;
            }
            tail = format!("…{}", &tail[cut..]);
        }
        out[i] = tail;
    }
    Ok(out)
}

/// Give overlapping attempts of a step different timeline rows (greedy interval packing:
/// the number of rows of a step is its peak parallelism).
fn assign_lanes(attempts: &mut [AttemptRow]) {
    let mut by_step: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, a) in attempts.iter().enumerate() {
        if a.start_ms.is_some() {
            by_step.entry(a.step).or_default().push(i);
        }
    }
    for (_, mut idx) in by_step {
        idx.sort_by(|&x, &y| {
            attempts[x]
                .start_ms
                .partial_cmp(&attempts[y].start_ms)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        // lane ends, kept in a min-heap by end time
        let mut ends: std::collections::BinaryHeap<std::cmp::Reverse<(u64, usize)>> =
            Default::default();
        let mut lanes = 0;
        for i in idx {
            let start = (attempts[i].start_ms.unwrap_or(0.0) * 1000.0) as u64;
            let end = (attempts[i].end_ms.unwrap_or(0.0) * 1000.0) as u64;
            let lane = match ends.peek() {
                Some(std::cmp::Reverse((e, _))) if *e <= start => {
                    let std::cmp::Reverse((_, l)) = ends.pop().expect("peeked");
                    l
                }
                _ => {
                    lanes += 1;
                    lanes - 1
                }
            };
            attempts[i].lane = lane;
            ends.push(std::cmp::Reverse((end.max(start), lane)));
        }
    }
}

/// Count each step's tasks and say its status.
fn summarize(steps: &mut [StepSummary], attempts: &[AttemptRow], state: RunState) {
    // task -> (attempts, final status): success wins, else the last attempt's.
    let mut tasks: BTreeMap<(usize, &[u32]), (usize, AttemptStatus, bool)> = BTreeMap::new();
    let mut body: Vec<Vec<f64>> = vec![Vec::new(); steps.len()];
    for a in attempts {
        let e = tasks.entry((a.step, a.index.0.as_slice())).or_insert((
            0,
            a.status,
            a.reused || a.cached,
        ));
        e.0 += 1;
        if !e.1.is_success() {
            e.1 = a.status;
            e.2 = a.reused || a.cached;
        }
        if a.status.is_success() && !a.reused && !a.cached {
            body[a.step].push(a.body_ms);
        }
    }
    for ((step, _), (n, status, reused)) in tasks {
        let s = &mut steps[step];
        s.tasks += 1;
        s.retries += n - 1;
        match status {
            AttemptStatus::Ok => s.ok += 1,
            AttemptStatus::Caught => s.caught += 1,
            _ => s.failed += 1,
        }
        if reused {
            s.reused += 1;
        }
    }
    for (s, mut b) in steps.iter_mut().zip(body) {
        if !b.is_empty() {
            b.sort_by(|x, y| x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal));
            s.step_ms = Some((b[0], b[b.len() / 2], b[b.len() - 1]));
        }
        s.status = if s.failed > 0 {
            "failed"
        } else if s.tasks == 0 {
            match state {
                RunState::Running => "pending",
                _ => "not-run",
            }
        } else if s.caught > 0 {
            "caught"
        } else {
            "ok"
        };
    }
}

/// The cards of the report's attempts: one listing of the run's `cards/` (a 10,000-task
/// run without cards costs one request), plus a look in the origin run for reused tasks.
fn read_cards(
    ds: &Datastore,
    flow: &str,
    run: &str,
    sources: &[TaskRef],
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<usize, Vec<CardItem>>> {
    let prefix = layout::cards(flow, run);
    let mut here: BTreeSet<(String, String, u32)> = BTreeSet::new();
    for obj in ds.list(&prefix)? {
        if let Some((step, index, attempt)) = obj
            .rel
            .strip_prefix(&prefix)
            .and_then(layout::parse_card_file)
        {
            here.insert((step.to_string(), index.to_string(), attempt));
        }
    }
    let mut out = BTreeMap::new();
    for (i, t) in sources.iter().enumerate() {
        let dir = t.index.dir_name();
        if t.run == run && !here.contains(&(t.step.clone(), dir.clone(), t.attempt)) {
            continue;
        }
        let rel = layout::card(flow, &t.run, &t.step, &dir, t.attempt);
        match ds.get_json::<CardRecord>(&rel) {
            Ok(Some(c)) => {
                out.insert(i, c.card.items().to_vec());
            }
            Ok(None) => {}
            Err(e) => warnings.push(format!(
                "card of task {} attempt {}: {}",
                t.task_id(),
                t.attempt,
                chain(&e)
            )),
        }
    }
    Ok(out)
}

/// Every `k`-th point and the last, so a series has at most [`MAX_CHART_POINTS`].
fn thin(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if points.len() <= MAX_CHART_POINTS {
        return points;
    }
    let k = points.len().div_ceil(MAX_CHART_POINTS);
    let last = points[points.len() - 1];
    let mut out: Vec<(f64, f64)> = points.into_iter().step_by(k).collect();
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

/// The report's metric charts, by metric name.
fn metric_charts(
    ds: &Datastore,
    flow: &str,
    run: &str,
    steps: &[StepSummary],
    attempts: &[AttemptRow],
    warnings: &mut Vec<String>,
) -> Vec<MetricChart> {
    let logging: Vec<&AttemptRow> = attempts.iter().filter(|a| !a.metrics.is_empty()).collect();
    if logging.is_empty() {
        return Vec::new();
    }
    let mut charts: BTreeMap<String, MetricChart> = BTreeMap::new();
    if logging.len() <= POINT_CHARTS_UP_TO {
        // Points of this run's attempts (a reused attempt's are in its origin run).
        match crate::meta::metrics::read_run_metrics(ds, flow, run) {
            Ok(all) => {
                for (task, points) in all {
                    let label = format!("{}@{}", task.task_id(), task.attempt);
                    let mut by_name: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
                    for (i, p) in points.iter().enumerate() {
                        let x = p.step.map_or(i as f64, |s| s as f64);
                        by_name
                            .entry(p.name.as_str())
                            .or_default()
                            .push((x, p.value));
                    }
                    for (name, pts) in by_name {
                        charts
                            .entry(name.to_string())
                            .or_insert_with(|| MetricChart {
                                name: name.to_string(),
                                what: "points by step (or by order logged), one line per attempt"
                                    .into(),
                                series: Vec::new(),
                            })
                            .series
                            .push((label.clone(), thin(pts)));
                    }
                }
                return charts.into_values().collect();
            }
            Err(e) => warnings.push(format!(
                "metrics of run {run}: {} (charts show last values)",
                chain(&e)
            )),
        }
    }
    // Last values, one line per step, x = the task's ordinal within its step.
    let mut ordinal: HashMap<usize, usize> = HashMap::new();
    for a in logging {
        let n = ordinal.entry(a.step).or_default();
        *n += 1;
        for (name, m) in &a.metrics {
            let chart = charts.entry(name.clone()).or_insert_with(|| MetricChart {
                name: name.clone(),
                what: "last value of each attempt, by task, one line per step".into(),
                series: Vec::new(),
            });
            let label = &steps[a.step].name;
            match chart.series.iter_mut().find(|(s, _)| s == label) {
                Some((_, pts)) => pts.push((*n as f64, m.last)),
                None => chart
                    .series
                    .push((label.clone(), vec![(*n as f64, m.last)])),
            }
        }
    }
    charts
        .into_values()
        .map(|mut c| {
            c.series = c.series.into_iter().map(|(n, p)| (n, thin(p))).collect();
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: usize, index: u32, attempt: u32, start: f64, end: f64) -> AttemptRow {
        AttemptRow {
            step,
            index: IndexPath(vec![index]),
            attempt,
            status: AttemptStatus::Ok,
            reused: false,
            cached: false,
            source_run: None,
            error: None,
            start_ms: Some(start),
            end_ms: Some(end),
            load_ms: 0.0,
            body_ms: end - start,
            store_ms: 0.0,
            host: "h".into(),
            artifacts: Vec::new(),
            logs: None,
            metrics: BTreeMap::new(),
            lane: 99,
        }
    }

    #[test]
    fn overlapping_attempts_get_lanes_and_a_free_lane_is_reused() {
        let mut a = vec![
            row(0, 0, 0, 0.0, 10.0),
            row(0, 1, 0, 1.0, 5.0),
            row(0, 2, 0, 5.0, 8.0), // starts when 1 ends: its lane
            row(0, 3, 0, 2.0, 9.0),
            row(1, 0, 0, 3.0, 4.0), // another step: lanes of its own
        ];
        assign_lanes(&mut a);
        let lanes: Vec<usize> = a.iter().map(|r| r.lane).collect();
        assert_eq!(lanes, [0, 1, 1, 2, 0]);
    }

    #[test]
    fn a_step_fails_when_a_task_ends_failed_and_a_retry_that_succeeds_counts_as_ok() {
        let mut steps = vec![unlisted_step("work"), unlisted_step("join")];
        let mut a = vec![
            row(0, 0, 0, 0.0, 1.0),
            row(0, 1, 0, 0.0, 1.0),
            row(0, 1, 1, 1.0, 2.0),
            row(0, 2, 0, 0.0, 1.0),
            row(0, 2, 1, 1.0, 2.0),
        ];
        a[1].status = AttemptStatus::Failed;
        a[3].status = AttemptStatus::Failed;
        a[4].status = AttemptStatus::Failed;
        summarize(&mut steps, &a, RunState::Failed);
        let w = &steps[0];
        assert_eq!((w.tasks, w.ok, w.failed, w.retries), (3, 2, 1, 2));
        assert_eq!(w.status, "failed");
        assert_eq!(steps[1].status, "not-run");
        summarize(&mut steps[1..], &[], RunState::Running);
        assert_eq!(steps[1].status, "pending");
    }

    #[test]
    fn long_series_are_thinned_keeping_the_last_point() {
        let pts: Vec<(f64, f64)> = (0..10_001).map(|i| (i as f64, i as f64)).collect();
        let t = thin(pts);
        assert!(t.len() <= MAX_CHART_POINTS + 1, "{}", t.len());
        assert_eq!(t[0], (0.0, 0.0));
        assert_eq!(*t.last().unwrap(), (10_000.0, 10_000.0));
    }

    #[test]
    fn card_markdown_shows_raw_html_as_text() {
        let html = render::card_html(&[CardItem::Markdown {
            text: "**bold** <script>alert(1)</script>".into(),
        }]);
        assert!(html.contains("<strong>bold</strong>"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
