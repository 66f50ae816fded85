//! Run events: what the scheduler reports as a run goes, to any [`EventSink`]. The terminal
//! progress display is one sink; reports and tracking add others.

use std::time::Duration;

use crate::meta::AttemptStatus;

/// Something that happened in a run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub(crate) enum RunEvent {
    /// Tasks of a step became known (a foreach expands, a task is scheduled).
    Queued { step: usize, tasks: usize },
    /// A task was taken from the origin run of a resume.
    Reused { step: usize, task: String },
    /// A task of a `#[cache]` step was taken from the cache: `from` computed it
    /// (`run 1733 task fit/2`).
    Cached {
        step: usize,
        task: String,
        from: String,
    },
    /// An attempt was handed to the executor.
    Started {
        step: usize,
        task: String,
        attempt: u32,
    },
    /// An attempt committed (ok, or caught its error and continued).
    Committed {
        step: usize,
        task: String,
        attempt: u32,
        status: AttemptStatus,
        elapsed: Duration,
    },
    /// An attempt failed and the task will be tried again after `delay`.
    Retrying {
        step: usize,
        task: String,
        attempt: u32,
        error: String,
        delay: Duration,
        of: u32,
    },
    /// The task failed for good.
    Failed {
        step: usize,
        task: String,
        attempt: u32,
        error: String,
    },
    /// A remark about the run (e.g. a fence that must be retried).
    Note { message: String },
}

/// Receives a run's events, in order, on the scheduler's thread.
pub(crate) trait EventSink {
    /// One event.
    fn event(&mut self, event: &RunEvent);
    /// Called regularly while the run waits (redraw a live display).
    fn tick(&mut self) {}
    /// The run's last event has been delivered.
    fn finish(&mut self) {}
}

/// Keeps every event (tests, and sinks that render after the run).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub(crate) events: Vec<RunEvent>,
}

impl EventSink for Recorder {
    fn event(&mut self, e: &RunEvent) {
        self.events.push(e.clone());
    }
}

/// `350ms`, `1.2s`, `3m05s`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        format!("{:.1}s", ms / 1000.0)
    } else {
        format!(
            "{}m{:02}s",
            (ms / 60_000.0) as u64,
            ((ms / 1000.0) as u64) % 60
        )
    }
}
