//! Every blob and manifest that committed metadata references, and where: what `verify`
//! checks and what `gc` keeps.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use crate::error::{chain, Error, Result};
use crate::store::layout;
use crate::store::Datastore;
use crate::store::{BlobRef, Digest};

/// Where a blob is referenced.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Place {
    /// Flow name.
    pub flow: String,
    /// Run id.
    pub run: String,
    /// The referencing task and attempt (`fit/2 attempt 0`), `(initial state)`, or the
    /// checkpoint's `<step>/<index>`.
    pub task: String,
    /// Artifact name, or `(checkpoint)`.
    pub artifact: String,
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

/// Run metadata that could not be read, so the references it holds are unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unreadable {
    /// Flow name.
    pub flow: String,
    /// Run id.
    pub run: String,
    /// What could not be read, and why (`run record: …`).
    pub detail: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "flow {} run {}: {}", self.flow, self.run, self.detail)
    }
}

/// One referenced blob: every place that references it, and how it is held.
#[derive(Debug)]
pub(crate) struct Referenced {
    pub(crate) blob: BlobRef,
    pub(crate) places: Vec<Place>,
    /// The bytes manifests that name it hold inline: each distinct copy (one, unless one
    /// is damaged), with the indexes in `places` of those that hold it.
    pub(crate) inline: Vec<(Bytes, Vec<usize>)>,
    /// Some place names it without holding its bytes (an older manifest, an initial
    /// state, a checkpoint, an alias): its object must exist under `blobs/`.
    pub(crate) object: bool,
}

/// What committed metadata references.
#[derive(Debug, Default)]
pub(crate) struct References {
    /// Each referenced blob, with every place that references it.
    pub(crate) blobs: HashMap<Digest, Referenced>,
    /// The manifests commit records name.
    pub(crate) manifests: HashSet<Digest>,
    /// The code packages (flow executables) run records name.
    pub(crate) packages: HashSet<Digest>,
    /// Metadata that could not be read.
    pub(crate) unreadable: Vec<Unreadable>,
    /// Cache entries that do not verify: `verify` reports them; `gc` goes on (a lookup
    /// ignores them, so they root nothing).
    pub(crate) bad_cache: Vec<Unreadable>,
}

impl References {
    /// `place` references `blob`, as an object.
    fn add(&mut self, blob: BlobRef, place: Place) {
        self.add_held(blob, place, None);
    }

    /// `place` references `blob`, holding its bytes when `inline` has them.
    fn add_held(&mut self, blob: BlobRef, place: Place, inline: Option<&Bytes>) {
        let r = self.blobs.entry(blob.digest).or_insert_with(|| Referenced {
            blob,
            places: Vec::new(),
            inline: Vec::new(),
            object: false,
        });
        let at = r.places.len();
        r.places.push(place);
        let Some(b) = inline else {
            r.object = true;
            return;
        };
        match r.inline.iter_mut().find(|(held, _)| held == b) {
            Some((_, holders)) => holders.push(at),
            None => r.inline.push((b.clone(), vec![at])),
        }
    }

    fn unreadable(&mut self, flow: &str, run: &str, detail: String) {
        self.unreadable.push(Unreadable {
            flow: flow.to_string(),
            run: run.to_string(),
            detail,
        });
    }
}

/// Collect the references of every committed run, or of one flow, or of one run.
pub(crate) fn references(
    ds: &Datastore,
    flow_filter: Option<&str>,
    run_filter: Option<&str>,
) -> Result<References> {
    let mut refs = References::default();
    let flows = match flow_filter {
        Some(f) => vec![f.to_string()],
        None => ds.flows()?,
    };
    for flow in flows {
        let runs = match run_filter {
            Some(r) => {
                crate::meta::validate_run_id(r)?;
                // A run that does not exist is an error; one whose records are damaged is
                // scanned for what can still be read, and its damage reported.
                if let Err(e @ Error::NotFound(_)) = ds.run_info(&flow, r) {
                    return Err(e);
                }
                vec![r.to_string()]
            }
            None => ds.run_ids(&flow)?,
        };
        for run in runs {
            run_references(ds, &flow, &run, &mut refs)?;
        }
        if run_filter.is_none() {
            cache_references(ds, &flow, &mut refs)?;
            alias_references(ds, &flow, &mut refs)?;
        }
    }
    Ok(refs)
}

/// The cache entries of `flow` are roots too: the task an entry names stays whole while
/// the entry exists, even if its run's records were removed by hand (`gc
/// --cache-max-age`/`--cache-keep` prune entries first). An entry that does not verify
/// roots nothing: a lookup ignores it, and `verify` reports it.
fn cache_references(ds: &Datastore, flow: &str, refs: &mut References) -> Result<()> {
    let (entries, bad) = crate::meta::cache::entries(ds, flow, None)?;
    let unreadable = |run: &str, detail: String| Unreadable {
        flow: flow.to_string(),
        run: run.to_string(),
        detail,
    };
    for (path, why) in bad {
        refs.bad_cache
            .push(unreadable("-", format!("cache entry {path}: {why}")));
    }
    for e in entries {
        let m = match crate::meta::commit::read_pinned(ds, &e.flow, &e.source, e.manifest) {
            Ok(m) => m,
            Err(err) => {
                refs.bad_cache.push(unreadable(
                    &e.source.run,
                    format!(
                        "cache entry {} of step {}: {}",
                        e.key.short(),
                        e.step,
                        chain(&err)
                    ),
                ));
                continue;
            }
        };
        refs.manifests.insert(e.manifest.digest);
        let task = format!("(cache entry {} of {})", e.key.short(), e.source.task_id());
        for (name, blob) in &m.artifacts {
            refs.add_held(
                *blob,
                Place {
                    flow: flow.to_string(),
                    run: e.source.run.clone(),
                    task: task.clone(),
                    artifact: name.clone(),
                },
                m.inline_of(blob),
            );
        }
    }
    Ok(())
}

/// What the current target of every alias of `flow` pins: its task's manifest and the
/// blobs it points at, kept even when the run they came from is deleted. (Earlier moves
/// of an alias are history; what only they point at may be collected.)
fn alias_references(ds: &Datastore, flow: &str, refs: &mut References) -> Result<()> {
    for name in ds.list_dirs(&layout::aliases(flow))? {
        let name = name.trim_end_matches('/');
        let name = name.rsplit('/').next().unwrap_or(name).to_string();
        let current = match crate::meta::aliases::history(ds, flow, &name) {
            Ok(mut h) => h.pop(),
            Err(e) => {
                refs.unreadable(flow, "-", format!("alias `{name}`: {}", chain(&e)));
                continue;
            }
        };
        let Some(r) = current else { continue };
        refs.manifests.insert(r.manifest.digest);
        for (artifact, blob) in &r.blobs {
            refs.add(
                *blob,
                Place {
                    flow: flow.to_string(),
                    run: r.task.run.clone(),
                    task: format!("{} (alias {name})", r.task.task_id()),
                    artifact: artifact.clone(),
                },
            );
        }
    }
    Ok(())
}

fn run_references(ds: &Datastore, flow: &str, run: &str, refs: &mut References) -> Result<()> {
    let place = |task: String, artifact: &str| Place {
        flow: flow.to_string(),
        run: run.to_string(),
        task,
        artifact: artifact.to_string(),
    };
    // Every record is read on its own: a damaged one is reported and the scan goes on, so
    // every blob the readable records reference is still found (and checked by `verify`).
    match ds.run_info(flow, run) {
        Ok(info) => {
            for (name, blob) in &info.record.initial {
                refs.add(*blob, place("(initial state)".into(), name));
            }
            if let Some(d) = info.record.code.exe_digest {
                refs.packages.insert(d);
            }
        }
        Err(Error::NotFound(_)) => return Ok(()),
        Err(e) => refs.unreadable(flow, run, format!("run record: {}", chain(&e))),
    }
    let checked = ds.task_attempts_checked(flow, run)?;
    for d in checked.damaged {
        refs.unreadable(flow, run, d.to_string());
    }
    for a in checked.attempts {
        if let Some(r) = a.manifest_ref {
            refs.manifests.insert(r.digest);
        }
        let Some(m) = &a.manifest else { continue };
        let task = format!("{} attempt {}", a.task_id(), a.source.attempt);
        for (name, blob) in &m.artifacts {
            refs.add_held(*blob, place(task.clone(), name), m.inline_of(blob));
        }
    }
    // Checkpoints are referenced by their latest pointers.
    #[derive(serde::Deserialize)]
    struct Ptr {
        blob: BlobRef,
    }
    let cp_prefix = layout::checkpoints(flow, run);
    for obj in ds.list(&cp_prefix)? {
        if !obj.rel.ends_with("latest.json") {
            continue;
        }
        match ds.get_json::<Ptr>(&obj.rel) {
            Ok(Some(p)) => {
                let task = obj.rel[cp_prefix.len()..].trim_end_matches("/latest.json");
                refs.add(p.blob, place(task.to_string(), "(checkpoint)"));
            }
            Ok(None) => {}
            Err(e) => refs.unreadable(flow, run, format!("checkpoint {}: {}", obj.rel, chain(&e))),
        }
    }
    Ok(())
}
