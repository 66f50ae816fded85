//! The `runs` table.

use std::fmt::Write;

use crate::error::Result;
use crate::meta::query::Damaged;
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

/// One run of the table: its records and state, or why its records cannot be read.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub(crate) struct RunRow {
    /// Run id.
    #[serde(skip)]
    pub(crate) run: String,
    /// Its records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) info: Option<RunInfo>,
    /// Its state when listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) state: Option<RunState>,
    /// Its run or end record, when one cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) damaged: Option<Damaged>,
}

impl RunsReport {
    /// The runs of `flow` in `ds`, or the last `limit` of them.
    pub(crate) fn build(ds: &Datastore, flow: &str, limit: Option<usize>) -> Result<RunsReport> {
        // A run whose records are damaged is a row saying so, never a failed listing.
        let mut runs = ds.runs_checked(flow)?;
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
                .map(|(run, r)| match r {
                    Ok(info) => RunRow {
                        run,
                        state: Some(RunState::of(&info)),
                        info: Some(info),
                        damaged: None,
                    },
                    Err(d) => RunRow {
                        run,
                        info: None,
                        state: None,
                        damaged: Some(d),
                    },
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
        let (Some(info), Some(state)) = (&self.info, self.state) else {
            let why = self.damaged.as_ref().map(|d| d.to_string());
            return format!(
                "{:<32} {:<10} {:<24} {:>10} {:>7}  {}",
                self.run,
                "damaged",
                "-",
                "-",
                "-",
                why.unwrap_or_default()
            );
        };
        let (r, end) = (&info.record, &info.end);
        let (dur, tasks) = match end {
            Some(e) => (
                format!("{:.2}s", e.duration_ms as f64 / 1000.0),
                e.tasks_ok.to_string(),
            ),
            None => ("-".into(), "-".into()),
        };
        let mut details = Vec::new();
        if let Some(o) = &r.orchestrator {
            details.push(format!("on {o}"));
        }
        if let Some(res) = &r.resume {
            details.push(format!(
                "resumed {} ({} reused)",
                res.origin, res.reused_tasks
            ));
        }
        if let Some(n) = end.as_ref().map(|e| e.tasks_cached).filter(|&n| n > 0) {
            details.push(format!("{n} cached"));
        }
        if !r.params.is_empty() {
            let p: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            details.push(p.join(" "));
        }
        if let Some(why) = info.end_error() {
            details.push(format!("end record not written: {why}"));
        }
        if let Some(e) = end.as_ref().filter(|e| !e.failures.is_empty()) {
            let failed: Vec<&str> = e.failures.iter().map(|(t, _)| t.as_str()).collect();
            details.push(format!("failed: {}", failed.join(", ")));
        }
        format!(
            "{:<32} {:<10} {:<24} {:>10} {:>7}  {}",
            r.run_id,
            state,
            r.started,
            dur,
            tasks,
            details.join("; ")
        )
    }
}
