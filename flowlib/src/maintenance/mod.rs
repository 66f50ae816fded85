//! `verify` (like `git fsck`) and `gc`.
//!
//! `verify` reads every committed manifest and checks that each blob it references exists
//! and hashes to its address; each problem is reported with run, step, task, artifact and
//! digest.
//!
//! `gc` deletes what no committed run references. The rule that keeps it safe next to runs
//! in progress: nothing younger than the grace period (default 24 h) is deleted. A task
//! writes its blobs moments before its commit record, and a writer that reuses an existing
//! blob refreshes its timestamp when it is older than an hour (and trusts its own memory
//! that a blob exists for at most an hour), so a blob a run is about to reference is always
//! younger than the grace period.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use crate::error::{chain, Error, Result};
use crate::store::cas::verify_blob;
use crate::store::layout;
use crate::store::Datastore;
use crate::store::{BlobRef, Digest};

/// Where a blob is referenced.
#[derive(Clone, Debug)]
struct Place {
    flow: String,
    run: String,
    task: String,
    artifact: String,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "flow {} run {} task {} artifact `{}`",
            self.flow, self.run, self.task, self.artifact
        )
    }
}

/// Parse `24h`, `30m`, `7d`, `0s`.
/// Every blob referenced by committed metadata, with where.
fn references(
    ds: &Datastore,
    flow_filter: Option<&str>,
    run_filter: Option<&str>,
    problems: &mut Vec<String>,
    mut manifests: Option<&mut HashSet<Digest>>,
) -> Result<HashMap<Digest, (BlobRef, Vec<Place>)>> {
    let mut refs: HashMap<Digest, (BlobRef, Vec<Place>)> = HashMap::new();
    let mut add = |blob: BlobRef, place: Place| {
        refs.entry(blob.digest)
            .or_insert_with(|| (blob, Vec::new()))
            .1
            .push(place);
    };
    let flows = match flow_filter {
        Some(f) => vec![f.to_string()],
        None => ds.flows()?,
    };
    for flow in flows {
        let runs = match run_filter {
            Some(r) => {
                crate::meta::validate_run_id(r)?;
                ds.run_info(&flow, r)?;
                vec![r.to_string()]
            }
            None => ds.run_ids(&flow)?,
        };
        for run in runs {
            let info = match ds.run_info(&flow, &run) {
                Ok(i) => i,
                Err(Error::NotFound(_)) => continue,
                Err(e) => {
                    problems.push(format!("flow {flow} run {run}: run record: {}", chain(&e)));
                    continue;
                }
            };
            for (name, blob) in &info.record.initial {
                add(
                    *blob,
                    Place {
                        flow: flow.clone(),
                        run: run.clone(),
                        task: "(initial state)".into(),
                        artifact: name.clone(),
                    },
                );
            }
            match ds.task_attempts(&flow, &run) {
                Ok(attempts) => {
                    for a in attempts {
                        if let (Some(set), Some(r)) = (manifests.as_deref_mut(), a.manifest_ref) {
                            set.insert(r.digest);
                        }
                        let Some(m) = &a.manifest else { continue };
                        for (name, blob) in &m.artifacts {
                            add(
                                *blob,
                                Place {
                                    flow: flow.clone(),
                                    run: run.clone(),
                                    task: format!("{} attempt {}", a.task_id(), a.source.attempt),
                                    artifact: name.clone(),
                                },
                            );
                        }
                    }
                }
                Err(e) => problems.push(format!("flow {flow} run {run}: {}", chain(&e))),
            }
            // Checkpoints are referenced by their latest pointers.
            let cp_prefix = layout::checkpoints(&flow, &run);
            for obj in ds.list(&cp_prefix)? {
                if !obj.rel.ends_with("latest.json") {
                    continue;
                }
                #[derive(serde::Deserialize)]
                struct Ptr {
                    blob: BlobRef,
                }
                match ds.get_json::<Ptr>(&obj.rel) {
                    Ok(Some(p)) => add(
                        p.blob,
                        Place {
                            flow: flow.clone(),
                            run: run.clone(),
                            task: obj.rel[cp_prefix.len()..]
                                .trim_end_matches("/latest.json")
                                .to_string(),
                            artifact: "(checkpoint)".into(),
                        },
                    ),
                    Ok(None) => {}
                    Err(e) => problems.push(format!(
                        "flow {flow} run {run}: checkpoint {}: {}",
                        obj.rel,
                        chain(&e)
                    )),
                }
            }
        }
    }
    Ok(refs)
}

/// Check every referenced blob; prints each problem and a summary. Returns the number of problems.
pub fn verify(ds: &Datastore, flow: Option<&str>, run: Option<&str>) -> Result<usize> {
    let mut problems = Vec::new();
    let refs = references(ds, flow, run, &mut problems, None)?;
    let mut out = std::io::stdout().lock();
    for p in &problems {
        let _ = writeln!(out, "problem: {p}");
    }
    let mut blobs: Vec<&(BlobRef, Vec<Place>)> = refs.values().collect();
    blobs.sort_by_key(|(b, _)| b.digest);
    let mut bad = 0usize;
    let mut bytes = 0u64;
    for (blob, places) in blobs {
        bytes += blob.size;
        if let Some(problem) = verify_blob(ds, *blob)? {
            bad += 1;
            for place in places {
                let _ = writeln!(out, "problem: {place} {}: {problem}", blob.digest);
            }
        }
    }
    let total = problems.len() + bad;
    let _ = writeln!(
        out,
        "verified {} blobs ({}) referenced by {} places: {}",
        refs.len(),
        crate::flow::graph::format_bytes(bytes),
        refs.values().map(|(_, p)| p.len()).sum::<usize>(),
        if total == 0 {
            "no problems".to_string()
        } else {
            format!("{total} problem{}", if total == 1 { "" } else { "s" })
        }
    );
    Ok(total)
}

/// What `gc` found.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Blobs deleted (or that would be, with `--dry-run`).
    pub blobs: usize,
    /// Their total size.
    pub bytes: u64,
    /// Orphaned records deleted: uncommitted manifests and staging files.
    pub orphans: usize,
    /// Unreferenced objects kept because they are younger than the grace period.
    pub kept_young: usize,
}

/// Delete unreferenced blobs and orphaned records older than `grace`.
pub fn gc(ds: &Datastore, dry_run: bool, grace: std::time::Duration) -> Result<GcReport> {
    let mut problems = Vec::new();
    // List first, then read references: anything committed after the listing references
    // objects that are either listed (and then young) or not listed at all.
    let blobs = ds.list(layout::BLOBS)?;
    let manifests_listing = ds.list(layout::MANIFESTS)?;
    // Staging objects of killed large writes and task specs are never referenced once
    // their writer is gone: they only wait out the grace period.
    let mut transient = ds.list(layout::TMP)?;
    transient.extend(ds.list(layout::SPECS)?);
    let mut manifest_refs = HashSet::new();
    let refs = references(ds, None, None, &mut problems, Some(&mut manifest_refs))?;
    let referenced_manifests: HashSet<String> =
        manifest_refs.iter().map(layout::manifest).collect();
    if !problems.is_empty() {
        return Err(Error::invalid(format!(
            "gc stopped: the datastore has unreadable metadata, so references cannot be trusted: {}; run `verify`",
            problems.join("; ")
        )));
    }
    let cutoff =
        chrono::Utc::now() - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let mut report = GcReport::default();
    let mut out = std::io::stdout().lock();
    let referenced: HashSet<String> = refs.keys().map(layout::blob).collect();
    for obj in &blobs {
        if referenced.contains(&obj.rel) {
            continue;
        }
        if obj.last_modified > cutoff {
            report.kept_young += 1;
            continue;
        }
        report.blobs += 1;
        report.bytes += obj.size;
        if dry_run {
            let _ = writeln!(
                out,
                "would delete {} ({})",
                obj.rel,
                crate::flow::graph::format_bytes(obj.size)
            );
        } else {
            ds.delete(&obj.rel)?;
        }
    }
    // Orphans: manifests no commit record names (attempts that never committed, or
    // lost a commit race).
    for obj in &manifests_listing {
        if referenced_manifests.contains(&obj.rel) {
            continue;
        }
        if obj.last_modified > cutoff {
            report.kept_young += 1;
            continue;
        }
        report.orphans += 1;
        if dry_run {
            let _ = writeln!(out, "would delete {} (manifest never committed)", obj.rel);
        } else {
            ds.delete(&obj.rel)?;
        }
    }
    for obj in &transient {
        if obj.last_modified > cutoff {
            report.kept_young += 1;
            continue;
        }
        report.orphans += 1;
        if dry_run {
            let _ = writeln!(
                out,
                "would delete {} (staging object or task spec)",
                obj.rel
            );
        } else {
            ds.delete(&obj.rel)?;
        }
    }
    // Staging files of interrupted local writes (`name#N`), invisible to listings.
    if let crate::store::Backend::Local(root) = ds.backend() {
        let cutoff_sys = std::time::SystemTime::now() - grace;
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                let Ok(meta) = e.metadata() else { continue };
                if meta.is_dir() {
                    stack.push(p);
                    continue;
                }
                let name = e.file_name().to_string_lossy().into_owned();
                let staged = name
                    .split_once('#')
                    .is_some_and(|(_, n)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
                if !staged {
                    continue;
                }
                if meta.modified().map(|m| m > cutoff_sys).unwrap_or(true) {
                    report.kept_young += 1;
                    continue;
                }
                report.orphans += 1;
                if dry_run {
                    let _ = writeln!(out, "would delete {} (interrupted write)", p.display());
                } else {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
    }
    if !dry_run {
        ds.forget_known();
    }
    let _ = writeln!(
        out,
        "{} {} unreferenced blob{} ({}) and {} orphan{}; kept {} unreferenced object{} younger than the grace period",
        if dry_run { "would delete" } else { "deleted" },
        report.blobs,
        if report.blobs == 1 { "" } else { "s" },
        crate::flow::graph::format_bytes(report.bytes),
        report.orphans,
        if report.orphans == 1 { "" } else { "s" },
        report.kept_young,
        if report.kept_young == 1 { "" } else { "s" },
    );
    Ok(report)
}
