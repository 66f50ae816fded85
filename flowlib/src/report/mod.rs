//! What the CLI shows, as data: report models built from the client and meta layers,
//! and their text renderings. Nothing here prints; the CLI prints what `render_text`
//! returns, so another renderer (JSON, HTML) needs no change to how reports are built.
//!
//! The run summary is [`RunSummary`](crate::RunSummary) and the maintenance reports are
//! [`VerifyReport`](crate::maintenance::VerifyReport) and [`GcReport`](crate::GcReport):
//! they are already plain data returned by the layers below, and are rendered here.

mod dump;
pub(crate) mod html;
mod maintenance;
mod runs;
mod summary;
mod tracking;

pub(crate) use dump::DumpReport;
pub(crate) use runs::RunsReport;
pub(crate) use tracking::{AliasMove, AliasReport, CompareReport, SearchReport, TagsReport};

use crate::meta::{RunInfo, RunStatus};

/// A run's state as listed: its status, told apart from a run whose process is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub(crate) enum RunState {
    /// Every task succeeded.
    Succeeded,
    /// Some task failed.
    Failed,
    /// No end record, and its process may still be running.
    Running,
    /// No end record, and its process on this host is gone.
    Killed,
    /// Cancelled (Ctrl-C or `cancel`); `resume` continues it.
    Cancelled,
}

impl RunState {
    /// The state of `info` now (probes whether a running run's process is alive).
    pub(crate) fn of(info: &RunInfo) -> RunState {
        match info.status() {
            RunStatus::Succeeded => RunState::Succeeded,
            RunStatus::Failed => RunState::Failed,
            RunStatus::Cancelled => RunState::Cancelled,
            RunStatus::Running if info.is_alive() == Some(false) => RunState::Killed,
            RunStatus::Running => RunState::Running,
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that table columns (`{:<10}`) line up.
        f.pad(match self {
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Running => "running",
            RunState::Killed => "killed",
            RunState::Cancelled => "cancelled",
        })
    }
}

/// `1 task`, `2 tasks`.
fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
