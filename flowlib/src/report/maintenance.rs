//! The text of `verify` and `gc`.

use std::fmt::Write;

use crate::flow::graph::format_bytes;
use crate::maintenance::{Garbage, GcReport, Problem, VerifyReport};
use crate::report::plural;

impl VerifyReport {
    /// One `problem:` line per problem and place, then a summary line.
    pub(crate) fn render_text(&self) -> String {
        let mut out = String::new();
        for p in &self.problems {
            match p {
                Problem::Unreadable(u) => {
                    let _ = writeln!(out, "problem: {u}");
                }
                Problem::Blob {
                    digest,
                    problem,
                    places,
                } => {
                    for place in places {
                        let _ = writeln!(out, "problem: {place} {digest}: {problem}");
                    }
                }
            }
        }
        for (digest, to) in &self.quarantined {
            let _ = writeln!(out, "quarantined: {digest} (moved to {to})");
        }
        let n = self.problems.len();
        let _ = writeln!(
            out,
            "verified {} blobs ({}{}) referenced by {} places: {}",
            self.blobs,
            format_bytes(self.bytes),
            match self.inline {
                0 => String::new(),
                k => format!(", {k} held inline"),
            },
            self.places,
            if n == 0 {
                "no problems".to_string()
            } else {
                format!("{n} problem{}", plural(n))
            }
        );
        let q = self.quarantined.len();
        if q > 0 {
            let _ = writeln!(
                out,
                "quarantined {q} corrupt blob{}: run or resume the tasks that produce them to store them again",
                plural(q)
            );
        } else if !self.corrupt.is_empty() && !self.repaired {
            let _ = writeln!(
                out,
                "`verify --repair` moves corrupt blobs aside, so that the next run or resume stores them again"
            );
        }
        out
    }
}

impl GcReport {
    /// With `--dry-run`, one line per object that would go; then a summary line.
    pub(crate) fn render_text(&self) -> String {
        let mut out = String::new();
        if self.dry_run {
            for d in &self.deleted {
                let why = match d.kind {
                    Garbage::Blob => format_bytes(d.size),
                    Garbage::Manifest => "manifest never committed".into(),
                    Garbage::Transient => "staging object, task spec or quarantined blob".into(),
                    Garbage::InterruptedWrite => "interrupted write".into(),
                    Garbage::Package => "flow executable no run names".into(),
                };
                let _ = writeln!(out, "would delete {} ({why})", d.path);
            }
        }
        let _ = writeln!(
            out,
            "{} {} unreferenced blob{} ({}) and {} orphan{}; kept {} unreferenced object{} younger than the grace period",
            if self.dry_run { "would delete" } else { "deleted" },
            self.blobs,
            plural(self.blobs),
            format_bytes(self.bytes),
            self.orphans,
            plural(self.orphans),
            self.kept_young,
            plural(self.kept_young),
        );
        out
    }
}
