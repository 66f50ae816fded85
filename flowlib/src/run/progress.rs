//! Run progress on stderr: a live status line on a terminal, plain lines otherwise.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::meta::AttemptStatus;
use crate::run::events::{fmt_duration, EventSink, RunEvent};

/// How a run reports progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A live line on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// One line per finished task.
    Plain,
    /// Only the final summary and failures.
    Quiet,
}

#[derive(Default, Clone)]
struct StepCount {
    done: usize,
    total: usize,
    running: usize,
    failed: usize,
}

pub(crate) struct Progress {
    live: bool,
    plain: bool,
    names: Vec<&'static str>,
    counts: Vec<StepCount>,
    last_draw: Instant,
    drawn: bool,
}

impl Progress {
    pub(crate) fn new(mode: ProgressMode, names: Vec<&'static str>) -> Self {
        let tty = std::io::stderr().is_terminal();
        let (live, plain) = match mode {
            ProgressMode::Auto => (tty, !tty),
            ProgressMode::Plain => (false, true),
            ProgressMode::Quiet => (false, false),
        };
        Progress {
            live,
            plain,
            counts: vec![StepCount::default(); names.len()],
            names,
            last_draw: Instant::now() - Duration::from_secs(1),
            drawn: false,
        }
    }

    fn add_total(&mut self, step: usize, n: usize) {
        self.counts[step].total += n;
        self.redraw(false);
    }

    fn started(&mut self, step: usize) {
        self.counts[step].running += 1;
        self.redraw(false);
    }

    fn finished(&mut self, step: usize, task: &str, ok: bool, what: &str) {
        let c = &mut self.counts[step];
        c.running = c.running.saturating_sub(1);
        if ok {
            c.done += 1;
        } else {
            c.failed += 1;
        }
        if self.plain {
            eprintln!("  {task} {what}");
        } else if !ok {
            self.line(&format!("  {task} {what}"));
        }
        self.redraw(false);
    }

    fn reused(&mut self, step: usize, n: usize) {
        self.counts[step].done += n;
        self.redraw(false);
    }

    /// Print a message line (failures, retries) without garbling the live line.
    fn line(&mut self, msg: &str) {
        if self.live && self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
        eprintln!("{msg}");
        self.redraw(true);
    }

    fn redraw(&mut self, force: bool) {
        if !self.live || (!force && self.last_draw.elapsed() < Duration::from_millis(100)) {
            return;
        }
        self.last_draw = Instant::now();
        let mut parts = Vec::new();
        for (name, c) in self.names.iter().zip(&self.counts) {
            if c.total == 0 && c.done == 0 {
                continue;
            }
            let mut p = format!("{name} {}/{}", c.done, c.total.max(c.done));
            if c.running > 0 {
                p.push_str(&format!(" ({} running)", c.running));
            }
            if c.failed > 0 {
                p.push_str(&format!(" ({} failed)", c.failed));
            }
            parts.push(p);
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}", parts.join(" · "));
        let _ = err.flush();
        self.drawn = true;
    }
}

impl EventSink for Progress {
    fn event(&mut self, e: &RunEvent) {
        match e {
            RunEvent::Queued { step, tasks } => self.add_total(*step, *tasks),
            RunEvent::Reused { step, .. } => self.reused(*step, 1),
            RunEvent::Started { step, .. } => self.started(*step),
            RunEvent::Committed {
                step,
                task,
                status,
                elapsed,
                ..
            } => {
                let what = match status {
                    AttemptStatus::Caught => "caught an error and continued".to_string(),
                    _ => format!("ok ({})", fmt_duration(*elapsed)),
                };
                self.finished(*step, task, true, &what);
            }
            RunEvent::Retrying {
                step,
                task,
                attempt,
                error,
                delay,
                of,
            } => {
                self.finished(
                    *step,
                    task,
                    false,
                    &format!("attempt {attempt} failed: {error}"),
                );
                self.line(&format!(
                    "  {task} retrying in {} (attempt {} of {of})",
                    fmt_duration(*delay),
                    attempt + 2,
                ));
            }
            RunEvent::Failed {
                step, task, error, ..
            } => self.finished(*step, task, false, &format!("failed: {error}")),
            RunEvent::Note { message } => self.line(&format!("  {message}")),
        }
    }

    fn tick(&mut self) {
        self.redraw(false);
    }

    fn finish(&mut self) {
        if self.live && self.drawn {
            self.redraw(true);
            eprintln!();
            self.drawn = false;
        }
    }
}
