//! Run progress on stderr: a live status line on a terminal, plain lines otherwise.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

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

    pub(crate) fn add_total(&mut self, step: usize, n: usize) {
        self.counts[step].total += n;
        self.redraw(false);
    }

    pub(crate) fn started(&mut self, step: usize) {
        self.counts[step].running += 1;
        self.redraw(false);
    }

    pub(crate) fn finished(&mut self, step: usize, task: &str, ok: bool, what: &str) {
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

    pub(crate) fn reused(&mut self, step: usize, n: usize) {
        self.counts[step].done += n;
        self.redraw(false);
    }

    /// Print a message line (failures, retries) without garbling the live line.
    pub(crate) fn line(&mut self, msg: &str) {
        if self.live && self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
        eprintln!("{msg}");
        self.redraw(true);
    }

    pub(crate) fn tick(&mut self) {
        self.redraw(false);
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

    pub(crate) fn finish(&mut self) {
        if self.live && self.drawn {
            self.redraw(true);
            eprintln!();
            self.drawn = false;
        }
    }
}
