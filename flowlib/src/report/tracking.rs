//! Reports of experiment tracking: tags, search results, run comparisons, aliases and
//! lineage, with their text (and CSV) renderings.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::Serialize;

use crate::client::{Field, Lineage, Query, RunRow};
use crate::meta::aliases::AliasRecord;
use crate::meta::tags::Tags;

/// The tags and notes of one target.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct TagsReport {
    /// The target as given.
    pub(crate) target: String,
    /// Its tags and notes.
    #[serde(flatten)]
    pub(crate) tags: Tags,
}

impl TagsReport {
    pub(crate) fn render_text(&self) -> String {
        let mut out = String::new();
        if self.tags.tags.is_empty() && self.tags.notes.is_empty() {
            let _ = writeln!(out, "{}: no tags", self.target);
        }
        for (k, v) in &self.tags.tags {
            let _ = writeln!(out, "{k}={v}");
        }
        for n in &self.tags.notes {
            let _ = writeln!(out, "note ({} at {}): {}", n.who, n.when, n.text);
        }
        out
    }
}

/// Runs a search found, with the columns its query names.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct SearchReport {
    /// The fields the query names: the table's extra columns.
    #[serde(skip)]
    pub(crate) columns: Vec<Field>,
    /// The runs, in order.
    pub(crate) runs: Vec<RunRow>,
}

fn cell(row: &RunRow, f: &Field) -> String {
    match row.get(f) {
        Some(crate::client::Value::Num(n)) => format_num(n),
        Some(v) => v.to_string(),
        None => "-".to_string(),
    }
}

fn format_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        format!("{n:.6}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

impl SearchReport {
    pub(crate) fn new(query: &Query, runs: Vec<RunRow>) -> SearchReport {
        SearchReport {
            columns: query.fields(),
            runs,
        }
    }

    fn header(&self) -> Vec<String> {
        let mut h = vec!["run".to_string(), "status".into(), "started".into()];
        h.extend(self.columns.iter().map(|f| f.to_string()));
        h
    }

    fn rows(&self) -> Vec<Vec<String>> {
        self.runs
            .iter()
            .map(|r| {
                let mut v = vec![r.run.clone(), r.status.clone(), r.started.clone()];
                v.extend(self.columns.iter().map(|f| cell(r, f)));
                v
            })
            .collect()
    }

    pub(crate) fn render_text(&self) -> String {
        if self.runs.is_empty() {
            return "no runs match\n".to_string();
        }
        table(&self.header(), &self.rows())
    }

    pub(crate) fn render_csv(&self) -> String {
        let mut out = String::new();
        for row in std::iter::once(self.header()).chain(self.rows()) {
            let line: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
            let _ = writeln!(out, "{}", line.join(","));
        }
        out
    }
}

fn csv_cell(c: &str) -> String {
    if c.contains([',', '"', '\n']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c.to_string()
    }
}

/// Columns padded to their widest cell.
fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            let _ = write!(line, "{c:<w$}  ", w = width[i]);
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// Runs side by side: parameters, final metrics, tags and artifact digests.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct CompareReport {
    /// The runs compared, in the order given.
    pub(crate) runs: Vec<String>,
    /// One line per parameter, metric, tag and artifact.
    pub(crate) rows: Vec<CompareRow>,
}

/// One line of a comparison.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct CompareRow {
    /// `params.lr`, `metrics.val_loss`, `tags.team`, `artifacts.end/best`.
    pub(crate) key: String,
    /// The value in each run (none where a run has none).
    pub(crate) values: Vec<Option<String>>,
    /// The values are not all the same.
    pub(crate) differs: bool,
}

impl CompareReport {
    /// `rows` and their artifacts' digests (task/artifact → digest), per run.
    pub(crate) fn new(rows: &[RunRow], artifacts: &[BTreeMap<String, String>]) -> CompareReport {
        let mut keys: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
        let n = rows.len();
        let mut put = |key: String, i: usize, v: String| {
            keys.entry(key).or_insert_with(|| vec![None; n])[i] = Some(v);
        };
        for (i, r) in rows.iter().enumerate() {
            for (k, v) in &r.params {
                put(format!("params.{k}"), i, v.to_string());
            }
            for (k, m) in &r.metrics {
                put(format!("metrics.{k}"), i, format_num(m.last));
            }
            for (k, v) in &r.tags {
                put(format!("tags.{k}"), i, v.clone());
            }
            for (k, d) in &artifacts[i] {
                put(format!("artifacts.{k}"), i, d.clone());
            }
        }
        // Parameters, then metrics, then tags, then artifacts.
        let order = |k: &str| {
            ["params.", "metrics.", "tags.", "artifacts."]
                .iter()
                .position(|p| k.starts_with(p))
                .unwrap_or(4)
        };
        let mut rows_out: Vec<CompareRow> = keys
            .into_iter()
            .map(|(key, values)| {
                let distinct: BTreeSet<&Option<String>> = values.iter().collect();
                CompareRow {
                    differs: distinct.len() > 1,
                    key,
                    values,
                }
            })
            .collect();
        rows_out.sort_by(|a, b| (order(&a.key), &a.key).cmp(&(order(&b.key), &b.key)));
        CompareReport {
            runs: rows.iter().map(|r| r.run.clone()).collect(),
            rows: rows_out,
        }
    }

    /// A table; `*` marks the lines that differ, digests are shortened to 12 hex digits.
    pub(crate) fn render_text(&self) -> String {
        let mut header = vec![" ".to_string(), "".to_string()];
        header.extend(self.runs.iter().cloned());
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                let mut v = vec![if r.differs { "*" } else { " " }.to_string(), r.key.clone()];
                v.extend(r.values.iter().map(|x| {
                    match x {
                        Some(s) if r.key.starts_with("artifacts.") => s
                            .strip_prefix("sha256:")
                            .unwrap_or(s)
                            .chars()
                            .take(12)
                            .collect(),
                        Some(s) => s.clone(),
                        None => "-".to_string(),
                    }
                }));
                v
            })
            .collect();
        let mut out = table(&header, &rows);
        let differ = self.rows.iter().filter(|r| r.differs).count();
        let _ = writeln!(
            out,
            "{differ} of {} lines differ (marked *)",
            self.rows.len()
        );
        out
    }
}

/// One alias move, for `alias get|list|history`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct AliasReport {
    /// The moves shown.
    pub(crate) moves: Vec<AliasMove>,
}

/// An alias move with the target's tags.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct AliasMove {
    /// The record.
    #[serde(flatten)]
    pub(crate) record: AliasRecord,
    /// The target's current tags.
    pub(crate) tags: BTreeMap<String, String>,
}

impl AliasReport {
    pub(crate) fn render_text(&self) -> String {
        let mut out = String::new();
        if self.moves.is_empty() {
            out.push_str("no aliases\n");
        }
        for m in &self.moves {
            let r = &m.record;
            let digest = match (&r.artifact, r.blobs.values().next()) {
                (Some(_), Some(b)) => format!(" {}", b.digest),
                _ => String::new(),
            };
            let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(
                out,
                "{} #{} -> {}{digest} (by {} at {}){}",
                r.name,
                r.number,
                r.target(),
                r.who,
                r.when,
                if tags.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", tags.join(" "))
                }
            );
        }
        out
    }
}

impl Lineage {
    /// Producers with their inputs and parameters, then who read the value.
    pub(crate) fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "value {}", self.digest);
        if self.produced_by.is_empty() {
            let _ = writeln!(out, "produced by: no committed task names it");
        }
        for p in &self.produced_by {
            let _ = writeln!(
                out,
                "produced by {}/{} attempt {} as `{}`",
                p.task.run,
                p.task.task_id(),
                p.task.attempt,
                p.artifact
            );
            for i in &p.inputs {
                let _ = writeln!(
                    out,
                    "  input {}/{} attempt {}",
                    i.run,
                    i.task_id(),
                    i.attempt
                );
            }
            for (k, v) in &p.params {
                let _ = writeln!(out, "  param {k} = {v}");
            }
        }
        for a in &self.appears_in {
            let _ = writeln!(
                out,
                "{} {}/{} attempt {} as `{}`",
                if a.reused { "reused by" } else { "also in" },
                a.run,
                a.task.task_id(),
                a.task.attempt,
                a.artifact
            );
        }
        for a in &self.aliases {
            let _ = writeln!(out, "alias {} #{} points at it", a.name, a.number);
        }
        out
    }
}
