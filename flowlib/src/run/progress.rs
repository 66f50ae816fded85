//! Run progress on stderr: a live status line on a terminal, plain lines otherwise.
//!
//! A live line is redrawn in place (`\r`), so anything else written to the same terminal
//! would run into it. When stdout is that terminal too, steps' own output goes there, so
//! the status is printed as whole lines instead, at most every few seconds (#8.18): step
//! output and progress interleave line by line and never garble each other.

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

/// How a run with `mode` shows progress, given which of stderr and stdout are terminals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Display {
    /// The status line redrawn in place.
    Live,
    /// The status as a whole line, every [`STATUS_EVERY`] while it changes.
    Lines,
    /// One line per finished task.
    Plain,
    /// Failures only.
    Quiet,
}

/// How often [`Display::Lines`] prints the status.
const STATUS_EVERY: Duration = Duration::from_secs(2);

impl Display {
    fn choose(mode: ProgressMode, stderr_tty: bool, stdout_tty: bool) -> Display {
        match mode {
            ProgressMode::Auto if stderr_tty && stdout_tty => Display::Lines,
            ProgressMode::Auto if stderr_tty => Display::Live,
            ProgressMode::Auto | ProgressMode::Plain => Display::Plain,
            ProgressMode::Quiet => Display::Quiet,
        }
    }
}

pub(crate) struct Progress {
    live: bool,
    plain: bool,
    /// Print the status as whole lines (stdout shares the terminal).
    lines: bool,
    last_status: String,
    names: Vec<&'static str>,
    counts: Vec<StepCount>,
    last_draw: Instant,
    drawn: bool,
}

impl Progress {
    pub(crate) fn new(mode: ProgressMode, names: Vec<&'static str>) -> Self {
        let display = Display::choose(
            mode,
            std::io::stderr().is_terminal(),
            std::io::stdout().is_terminal(),
        );
        Progress {
            live: display == Display::Live,
            plain: display == Display::Plain,
            lines: display == Display::Lines,
            last_status: String::new(),
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
        if self.lines {
            return self.status_line(force);
        }
        if !self.live || (!force && self.last_draw.elapsed() < Duration::from_millis(100)) {
            return;
        }
        self.last_draw = Instant::now();
        let status = self.status();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{status}");
        let _ = err.flush();
        self.drawn = true;
    }

    /// The status as a whole line, when it changed and [`STATUS_EVERY`] has passed (or at
    /// the end).
    fn status_line(&mut self, force: bool) {
        if !force && self.last_draw.elapsed() < STATUS_EVERY {
            return;
        }
        let status = self.status();
        if status.is_empty() || status == self.last_status {
            return;
        }
        self.last_draw = Instant::now();
        eprintln!("  [{status}]");
        self.last_status = status;
    }

    /// `fit 3/10 (2 running) · pick 0/1`.
    fn status(&self) -> String {
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
        parts.join(" · ")
    }
}

impl EventSink for Progress {
    fn event(&mut self, e: &RunEvent) {
        match e {
            RunEvent::Queued { step, tasks } => self.add_total(*step, *tasks),
            RunEvent::Reused { step, .. } => self.reused(*step, 1),
            RunEvent::Cached { step, task, from } => {
                self.started(*step);
                self.finished(*step, task, true, &format!("cached from {from}"));
            }
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
        if self.lines {
            self.status_line(true);
        }
        if self.live && self.drawn {
            self.redraw(true);
            eprintln!();
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (#8.18): when steps' stdout shares the terminal, the status is printed
    /// as whole lines, never redrawn in place where step output would run into it.
    #[test]
    fn the_live_line_is_only_used_when_stdout_is_elsewhere() {
        use Display::*;
        let auto = ProgressMode::Auto;
        assert_eq!(Display::choose(auto, true, true), Lines);
        assert_eq!(Display::choose(auto, true, false), Live);
        assert_eq!(Display::choose(auto, false, true), Plain);
        assert_eq!(Display::choose(ProgressMode::Plain, true, true), Plain);
        assert_eq!(Display::choose(ProgressMode::Quiet, true, true), Quiet);
    }

    #[test]
    fn status_lines_are_printed_only_when_the_status_changed() {
        let mut p = Progress::new(ProgressMode::Quiet, vec!["a", "b"]);
        p.lines = true;
        p.add_total(0, 2);
        p.status_line(true);
        assert_eq!(p.last_status, "a 0/2");
        p.finished(0, "a/0", true, "ok");
        p.status_line(false);
        assert_eq!(p.last_status, "a 0/2", "not before STATUS_EVERY");
        p.status_line(true);
        assert_eq!(p.last_status, "a 1/2");
    }
}
