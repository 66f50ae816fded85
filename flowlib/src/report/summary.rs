//! The summary `run` and `resume` print when a run ends.

use std::fmt::Write;

use crate::meta::RunStatus;
use crate::report::plural;
use crate::run::RunSummary;

impl RunSummary {
    /// The summary as text: one line, plus the failures and what to do when it failed.
    pub(crate) fn render_text(&self) -> String {
        let secs = self.duration.as_secs_f64();
        let mut reused = if self.tasks_reused > 0 {
            format!(", {} reused", self.tasks_reused)
        } else {
            String::new()
        };
        if self.tasks_cached > 0 {
            let _ = write!(reused, ", {} cached", self.tasks_cached);
        }
        let mut out = String::new();
        if self.status == RunStatus::Succeeded {
            let _ = writeln!(
                out,
                "flowlib: run {} succeeded in {secs:.2}s: {} tasks{reused}",
                self.run_id,
                self.tasks_ok + self.tasks_reused + self.tasks_cached
            );
            self.render_reruns(&mut out);
            return out;
        }
        let _ = writeln!(
            out,
            "flowlib: run {} failed in {secs:.2}s: {} task{} failed, {} succeeded{reused}",
            self.run_id,
            self.failures.len(),
            plural(self.failures.len()),
            self.tasks_ok
        );
        self.render_reruns(&mut out);
        for (task, err) in &self.failures {
            let _ = writeln!(out, "  {task}: {err}");
        }
        if !self.not_run.is_empty() {
            let _ = writeln!(
                out,
                "  not run because of the failures: {}",
                self.not_run.join(", ")
            );
        }
        out.push_str(
            "  fix the problem, then continue with `resume` (finished tasks are reused)\n",
        );
        out
    }

    /// One line per changed parameter of a resume: the steps re-run because of it.
    fn render_reruns(&self, out: &mut String) {
        for (param, steps) in &self.rerun_for_params {
            let _ = writeln!(
                out,
                "  parameter {param} changed: re-ran {} (they read it, or follow a step that does)",
                steps.join(", ")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_resume_says_which_steps_reran_for_which_parameter() {
        let s = RunSummary {
            run_id: "r2".into(),
            status: RunStatus::Succeeded,
            tasks_ok: 3,
            tasks_reused: 3,
            tasks_cached: 0,
            failures: Vec::new(),
            not_run: Vec::new(),
            duration: std::time::Duration::from_millis(250),
            rerun_for_params: BTreeMap::from([(
                "lr".to_string(),
                vec!["fit".to_string(), "end".to_string()],
            )]),
        };
        assert_eq!(
            s.render_text(),
            "flowlib: run r2 succeeded in 0.25s: 6 tasks, 3 reused\n\
             \x20 parameter lr changed: re-ran fit, end (they read it, or follow a step that does)\n"
        );
    }

    #[test]
    fn failed_summary_names_failures_and_what_did_not_run() {
        let s = RunSummary {
            run_id: "r1".into(),
            status: RunStatus::Failed,
            tasks_ok: 2,
            tasks_reused: 1,
            tasks_cached: 2,
            failures: vec![("fit/0".into(), "boom".into())],
            not_run: vec!["end".into()],
            duration: std::time::Duration::from_millis(1500),
            rerun_for_params: BTreeMap::new(),
        };
        assert_eq!(
            s.render_text(),
            "flowlib: run r1 failed in 1.50s: 1 task failed, 2 succeeded, 1 reused, 2 cached\n\
             \x20 fit/0: boom\n\
             \x20 not run because of the failures: end\n\
             \x20 fix the problem, then continue with `resume` (finished tasks are reused)\n"
        );
    }
}
