//! Aliases (a model registry): a name such as `champion` that points at one artifact of one
//! committed task, or at a run's end state, and moves over time.
//!
//! Each move is a numbered create-only record, `aliases/<name>/<n>.json`, and a mover
//! takes `n` = one past the last record it saw. Two concurrent moves both pick the same `n`;
//! the store lets exactly one create it, and the other is told which move won (who, when,
//! where to) instead of silently overwriting it or landing behind it. The current target is
//! the highest-numbered record; the history is all of them. A record pins the task's
//! manifest and the artifact blobs it points at, so `gc` keeps them (`maintenance/gc.rs`)
//! even after the run is deleted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Site};
use crate::meta::tags::{numbered, who, writer_id};
use crate::meta::{now_rfc3339, parse_task_id, IndexPath, TaskRef, METADATA_VERSION};
use crate::store::cas::What;
use crate::store::{layout, BlobRef, Datastore, Digest};

/// One move of an alias.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AliasRecord {
    /// Metadata version.
    pub version: u32,
    /// The alias name.
    pub name: String,
    /// The move's number (0 for the first).
    pub number: u64,
    /// The task attempt it points at.
    pub task: TaskRef,
    /// The artifact, or none for the task's whole end state (a bare run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// The pinned manifest of that attempt.
    pub manifest: BlobRef,
    /// The blobs it points at: the artifact's, or every artifact of the end task.
    pub blobs: BTreeMap<String, BlobRef>,
    /// Who moved it: `user@host`.
    pub who: String,
    /// When (RFC 3339).
    pub when: String,
    /// A unique writer id.
    #[serde(default)]
    pub writer: String,
}

impl AliasRecord {
    /// `run/task/artifact` (or `run/task` for an end state).
    pub fn target(&self) -> String {
        match &self.artifact {
            Some(a) => format!("{}/{}/{a}", self.task.run, self.task.task_id()),
            None => format!("{}/{}", self.task.run, self.task.task_id()),
        }
    }
}

/// Whether `name` can name an alias: ASCII letters, digits, `_` and `-`, not empty.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

fn check_name(name: &str) -> Result<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "`{name}` is not a valid alias name: use ASCII letters, digits, `_` and `-`"
        )))
    }
}

/// A target as written on the command line: `<run>` (its end state) or
/// `<run>/<task>/<artifact>` where `<task>` is `step` or `step/2.5`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TargetSpec {
    pub(crate) run: String,
    /// (step, index, artifact) — none for a bare run.
    pub(crate) task: Option<(String, IndexPath, String)>,
}

impl TargetSpec {
    pub(crate) fn parse(s: &str) -> Result<TargetSpec> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [run] if !run.is_empty() => Ok(TargetSpec {
                run: run.to_string(),
                task: None,
            }),
            [run, task @ .., artifact] if !task.is_empty() && task.len() <= 2 => {
                let joined = task.join("/");
                let (step, index) = parse_task_id(&joined)?;
                Ok(TargetSpec {
                    run: run.to_string(),
                    task: Some((step.to_string(), index, artifact.to_string())),
                })
            }
            _ => Err(Error::invalid(format!(
                "`{s}` is not a target: write <run> or <run>/<step>[/<index>]/<artifact>"
            ))),
        }
    }
}

/// The moves of alias `name` of flow `flow`, oldest first. A damaged record is an error
/// naming its path.
pub(crate) fn history(ds: &Datastore, flow: &str, name: &str) -> Result<Vec<AliasRecord>> {
    check_name(name)?;
    let mut out = Vec::new();
    for (_, rel) in numbered(ds, &layout::alias(flow, name))? {
        if let Some(r) = read_record(ds, &rel)? {
            out.push(r);
        }
    }
    Ok(out)
}

pub(crate) fn read_record(ds: &Datastore, rel: &str) -> Result<Option<AliasRecord>> {
    let Some(bytes) = ds.get_bytes(rel)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::metadata(ds.path(rel), format!("invalid alias record: {e}")))
}

/// The current target of alias `name`: its last move. Unknown alias: not found.
pub(crate) fn current(ds: &Datastore, flow: &str, name: &str) -> Result<AliasRecord> {
    history(ds, flow, name)?
        .pop()
        .ok_or_else(|| Error::not_found(format!("flow {flow} has no alias `{name}`")))
}

/// Every alias of flow `flow` with its current target, by name.
pub(crate) fn list(ds: &Datastore, flow: &str) -> Result<Vec<AliasRecord>> {
    let mut out = Vec::new();
    for name in ds.list_dirs(&layout::aliases(flow))? {
        let name = name.trim_end_matches('/');
        let name = name.rsplit('/').next().unwrap_or(name);
        if !valid_name(name) {
            continue;
        }
        if let Some(r) = history(ds, flow, name)?.pop() {
            out.push(r);
        }
    }
    Ok(out)
}

/// Move alias `name` of flow `flow` to `target`, whose end step is `end_step` (used for a
/// bare run). The target must be a committed, successful task (and artifact). Returns the
/// new record; when another move took the same number first, an error naming it.
pub(crate) fn set(
    ds: &Datastore,
    flow: &str,
    name: &str,
    target: &TargetSpec,
    end_step: &str,
) -> Result<AliasRecord> {
    check_name(name)?;
    let run = ds.resolve_run(flow, &target.run)?;
    let (task_id, artifact) = match &target.task {
        Some((step, index, artifact)) => (crate::meta::task_id(step, index), Some(artifact)),
        None => (end_step.to_string(), None),
    };
    let attempt = ds
        .successful_task(flow, &run, &task_id)
        .map_err(|e| match e {
            Error::NotFound(m) => Error::not_found(format!(
                "cannot point alias `{name}` at {run}/{task_id}: {m}"
            )),
            e => e,
        })?;
    let (Some(manifest), Some(pin)) = (&attempt.manifest, attempt.manifest_ref) else {
        return Err(Error::not_found(format!(
            "cannot point alias `{name}` at {run}/{task_id}: it has no manifest"
        )));
    };
    let blobs: BTreeMap<String, BlobRef> = match artifact {
        Some(a) => {
            let b = manifest.artifacts.get(a).ok_or_else(|| {
                Error::not_found(format!(
                    "task {task_id} of run {run} has no artifact `{a}` (it has: {})",
                    manifest
                        .artifacts
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            BTreeMap::from([(a.clone(), *b)])
        }
        None => manifest.artifacts.clone(),
    };
    // The alias keeps its blobs even when the run goes: those the manifest holds inline
    // are stored as objects first, so the alias never names a blob it cannot reach.
    for (artifact, b) in &blobs {
        if let Some(bytes) = manifest.inline_of(b) {
            let what = What::new(artifact, Site::task(Some(&run), &task_id));
            if Digest::of(bytes) != b.digest || bytes.len() as u64 != b.size {
                return Err(what.err(
                    b.digest,
                    "the bytes held inline in the task's manifest are corrupted",
                ));
            }
            crate::store::cas::put_inline(ds, *b, bytes, &what)?;
        }
    }
    let dir = layout::alias(flow, name);
    let n = numbered(ds, &dir)?.last().map_or(0, |(n, _)| n + 1);
    let record = AliasRecord {
        version: METADATA_VERSION,
        name: name.to_string(),
        number: n,
        task: attempt.source.clone(),
        artifact: artifact.cloned(),
        manifest: pin,
        blobs,
        who: who(),
        when: now_rfc3339(),
        writer: writer_id(),
    };
    let rel = layout::numbered(&dir, n);
    crate::failpoint::hold("before-alias", name);
    if ds.create_json(&rel, &record)? {
        return Ok(record);
    }
    let winner = read_record(ds, &rel)?;
    Err(Error::invalid(match winner {
        Some(w) => format!(
            "alias `{name}` was moved concurrently: move {n} by {} at {} points it at {}; yours (to {}) was not recorded",
            w.who,
            w.when,
            w.target(),
            record.target()
        ),
        None => format!("alias `{name}` was moved concurrently (move {n}); yours was not recorded"),
    }))
}

/// Check that the target of `record` still exists: its commit record names the pinned
/// manifest, and the manifest is readable. An error naming what is gone.
pub(crate) fn check_target(ds: &Datastore, flow: &str, record: &AliasRecord) -> Result<()> {
    let t = &record.task;
    let gone = |why: String| {
        Error::not_found(format!(
            "alias `{}` points at {}, but {why}",
            record.name,
            record.target()
        ))
    };
    match crate::meta::commit::read_commit(ds, flow, t) {
        Ok(Some((c, _))) if c.manifest == Some(record.manifest) => Ok(()),
        Ok(Some(_)) => Err(gone(format!(
            "the commit record of task {} attempt {} no longer names its manifest",
            t.task_id(),
            t.attempt
        ))),
        Ok(None) => Err(gone(format!(
            "task {} attempt {} of run {} is deleted or was never committed",
            t.task_id(),
            t.attempt,
            t.run
        ))),
        Err(e) => Err(gone(format!(
            "its records cannot be read: {}",
            crate::error::chain(&e)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t = TargetSpec::parse("r1/fit/2/model").unwrap();
        assert_eq!(
            t.task,
            Some(("fit".into(), IndexPath(vec![2]), "model".into()))
        );
        let t = TargetSpec::parse("r1/pick/best").unwrap();
        assert_eq!(
            t.task,
            Some(("pick".into(), IndexPath(vec![]), "best".into()))
        );
        assert_eq!(TargetSpec::parse("latest").unwrap().task, None);
        assert!(TargetSpec::parse("").is_err());
        assert!(TargetSpec::parse("r1/a/b/c/d").is_err());
        assert!(!valid_name("a/b") && valid_name("champion-2"));
    }
}
