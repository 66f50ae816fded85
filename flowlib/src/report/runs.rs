//! The `runs` table.

use std::fmt::Write;

use crate::error::Result;
use crate::meta::RunInfo;
use crate::report::RunState;
use crate::store::Datastore;

/// The runs of one flow, oldest first.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub(crate) struct RunsReport {
    /// Flow name.
    pub(crate) flow: String,
    /// The datastore's URL.
    pub(crate) datastore: String,
    /// Only the last N runs were asked for.
    pub(crate) limit: Option<usize>,
    /// The runs listed.
    pub(crate) runs: Vec<RunRow>,
}

/// One run of the table.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub(crate) struct RunRow {
    /// Its records.
    pub(crate) info: RunInfo,
    /// Its state when listed.
    pub(crate) state: RunState,
}

impl RunsReport {
    /// The runs of `flow` in `ds`, or the last `limit` of them.
    pub(crate) fn build(ds: &Datastore, flow: &str, limit: Option<usize>) -> Result<RunsReport> {
        let mut runs = ds.runs(flow)?;
        if let Some(n) = limit {
            let skip = runs.len().saturating_sub(n);
            runs.drain(..skip);
        }
        Ok(RunsReport {
            flow: flow.to_string(),
            datastore: ds.url().to_string(),
            limit,
            runs: runs
                .into_iter()
                .map(|info| RunRow {
                    state: RunState::of(&info),
                    info,
                })
                .collect(),
        })
    }

    /// A header and one line per run; a note when there are none (nothing for `--limit 0`).
    pub(crate) fn render_text(&self) -> String {
        let mut out = String::new();
        if self.runs.is_empty() {
            if self.limit != Some(0) {
                let _ = writeln!(out, "no runs of {} in {}", self.flow, self.datastore);
            }
            return out;
        }
        let _ = writeln!(
            out,
            "{:<32} {:<10} {:<24} {:>10} {:>7}  details",
            "RUN", "STATUS", "STARTED", "DURATION", "TASKS"
        );
        for row in &self.runs {
            let _ = writeln!(out, "{}", row.render_text());
        }
        out
    }
}

impl RunRow {
    fn render_text(&self) -> String {
        let (r, end) = (&self.info.record, &self.info.end);
        let (dur, tasks) = match end {
            Some(e) => (
                format!("{:.2}s", e.duration_ms as f64 / 1000.0),
                e.tasks_ok.to_string(),
            ),
            None => ("-".into(), "-".into()),
        };
        let mut details = Vec::new();
        if let Some(res) = &r.resume {
            details.push(format!(
                "resumed {} ({} reused)",
                res.origin, res.reused_tasks
            ));
        }
        if !r.params.is_empty() {
            let p: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            details.push(p.join(" "));
        }
        if let Some(e) = end.as_ref().filter(|e| !e.failures.is_empty()) {
            let failed: Vec<&str> = e.failures.iter().map(|(t, _)| t.as_str()).collect();
            details.push(format!("failed: {}", failed.join(", ")));
        }
        format!(
            "{:<32} {:<10} {:<24} {:>10} {:>7}  {}",
            r.run_id,
            self.state,
            r.started,
            dur,
            tasks,
            details.join("; ")
        )
    }
}
