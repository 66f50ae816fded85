//! `verify`: every referenced blob exists and hashes to its address; with `--repair`
//! ([`VerifyReport::repair`]), every corrupt blob found is moved to quarantine so that the
//! next run or resume that produces its value stores it again.

use std::collections::BTreeMap;

use crate::error::{chain, Result};
use crate::maintenance::references::{references, Place, Referenced, Unreadable};
use crate::meta::{aliases, metrics, tags};
use crate::store::cas::{quarantine, verify_blob, Damage};
use crate::store::layout;
use crate::store::Datastore;
use crate::store::{BlobRef, Digest};

/// What `verify` found.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Distinct blobs checked.
    pub blobs: usize,
    /// Their total size.
    pub bytes: u64,
    /// Of them, those held inline in the manifests that name them (checked against their
    /// digest there; no object needed).
    pub inline: usize,
    /// Places that reference them (a blob shared by two tasks counts twice).
    pub places: usize,
    /// Every problem: unreadable metadata first, then bad blobs by digest.
    pub problems: Vec<Problem>,
    /// After [`repair`](Self::repair): each corrupt blob moved to quarantine, and where
    /// its damaged copy went.
    pub quarantined: Vec<(Digest, String)>,
    /// Whether [`repair`](Self::repair) ran.
    pub(crate) repaired: bool,
    /// The blobs found present but corrupt (what `repair` moves aside).
    pub(crate) corrupt: Vec<BlobRef>,
}

impl VerifyReport {
    /// No problems found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// `verify --repair`: move every corrupt blob this report found to the datastore's
    /// `quarantine/`, and forget it in this process, so that the next run or resume that
    /// produces its value stores it again (a writer never trusts what is not at the
    /// blob's address). Missing blobs need no move. The problems stay in the report: the
    /// runs that reference those blobs are damaged until the values are written again.
    ///
    /// Each blob is hashed again after the move; a copy that turns out good (repaired
    /// meanwhile by a writer) is moved back, so nothing good is ever left in quarantine.
    pub fn repair(&mut self, ds: &Datastore) -> Result<()> {
        self.repaired = true;
        for blob in std::mem::take(&mut self.corrupt) {
            if let Some(to) = quarantine(ds, blob)? {
                self.quarantined.push((blob.digest, to));
            }
        }
        Ok(())
    }
}

/// One problem `verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// Run metadata could not be read.
    Unreadable(Unreadable),
    /// A referenced blob is missing or does not hash to its address.
    Blob {
        /// The blob's address.
        digest: Digest,
        /// What is wrong with it (`blob is missing`).
        problem: String,
        /// Every place that references it.
        places: Vec<Place>,
    },
}

/// Check every blob that committed metadata references (of one flow, or one run of it).
pub fn verify(ds: &Datastore, flow: Option<&str>, run: Option<&str>) -> Result<VerifyReport> {
    let refs = references(ds, flow, run)?;
    let mut report = VerifyReport {
        blobs: refs.blobs.len(),
        places: refs.blobs.values().map(|r| r.places.len()).sum(),
        problems: refs
            .unreadable
            .into_iter()
            .chain(refs.bad_cache)
            .map(Problem::Unreadable)
            .collect(),
        ..VerifyReport::default()
    };
    for u in tracking_problems(ds, flow, run)? {
        report.problems.push(Problem::Unreadable(u));
    }
    let mut blobs: Vec<Referenced> = refs.blobs.into_values().collect();
    blobs.sort_by_key(|r| r.blob.digest);
    // Many blobs, each a read and a hash: checked 16 at a time (remote stores wait on
    // the network; local ones hash on every core).
    let found = crate::store::par_io(&blobs, |r| check(ds, r))?;
    for (r, found) in blobs.into_iter().zip(found) {
        report.bytes += r.blob.size;
        report.inline += usize::from(!r.inline.is_empty());
        let Some((problem, corrupt, bad)) = found else {
            continue;
        };
        if corrupt {
            report.corrupt.push(r.blob);
        }
        let places = match bad {
            Some(bad) => bad.iter().map(|&i| r.places[i].clone()).collect(),
            None => r.places,
        };
        report.problems.push(Problem::Blob {
            digest: r.blob.digest,
            problem,
            places,
        });
    }
    Ok(report)
}

/// A blob's problem: what is wrong, whether it is a corrupt object (what `repair` moves
/// aside), and the places it concerns when not all of them (indexes into `places`).
type Found = (String, bool, Option<Vec<usize>>);

/// What is wrong with a referenced blob, if anything. Every copy held inline is checked
/// against the digest; the object is checked when some place needs it.
fn check(ds: &Datastore, r: &Referenced) -> Result<Option<Found>> {
    let bad: Vec<usize> = r
        .inline
        .iter()
        .filter(|(b, _)| b.len() as u64 != r.blob.size || Digest::of(b) != r.blob.digest)
        .flat_map(|(_, holders)| holders.iter().copied())
        .collect();
    if !bad.is_empty() {
        let problem = "the bytes held inline in the manifest do not hash to it";
        return Ok(Some((problem.to_string(), false, Some(bad))));
    }
    if !r.object {
        return Ok(None);
    }
    Ok(verify_blob(ds, r.blob)?.map(|d| {
        let corrupt = matches!(d, Damage::Corrupt(_));
        (d.to_string(), corrupt, None)
    }))
}

/// The tracking records of the runs `verify` checks: every metric chunk parses, and an
/// attempt's stored points agree with the counts its commit record keeps.
fn tracking_problems(
    ds: &Datastore,
    flow_filter: Option<&str>,
    run_filter: Option<&str>,
) -> Result<Vec<Unreadable>> {
    let mut out = Vec::new();
    let flows = match flow_filter {
        Some(f) => vec![f.to_string()],
        None => ds.flows()?,
    };
    for flow in flows {
        let runs = match run_filter {
            Some(r) => vec![r.to_string()],
            None => ds.run_ids(&flow)?,
        };
        for run in runs {
            let mut bad = |detail: String| {
                out.push(Unreadable {
                    flow: flow.clone(),
                    run: run.clone(),
                    detail,
                })
            };
            // Points stored, by attempt and metric name.
            let mut counts: BTreeMap<(String, String, u32), BTreeMap<String, u64>> =
                BTreeMap::new();
            let root = layout::run_metrics(&flow, &run);
            for l in ds.list(&root)? {
                let path = ds.path(&l.rel).to_string();
                let Some((step, index, attempt, _)) = l
                    .rel
                    .strip_prefix(&root)
                    .and_then(layout::parse_metric_path)
                else {
                    bad(format!("{path}: not a metric chunk"));
                    continue;
                };
                let key = (step.to_string(), index.to_string(), attempt);
                let Some(bytes) = ds.get_bytes(&l.rel)? else {
                    continue;
                };
                match metrics::parse_chunk(&bytes, &path) {
                    Ok(points) => {
                        let c = counts.entry(key).or_default();
                        for p in points {
                            *c.entry(p.name).or_default() += 1;
                        }
                    }
                    Err(e) => bad(format!("metrics: {}", chain(&e))),
                }
            }
            // Tag events of the run and of its artifacts.
            for dir in [
                layout::run_tags(&flow, &run),
                layout::run_artifact_tags(&flow, &run),
            ] {
                for l in ds.list(&dir)? {
                    let path = ds.path(&l.rel).to_string();
                    let ok_name = l
                        .rel
                        .rsplit('/')
                        .next()
                        .and_then(layout::parse_numbered)
                        .is_some();
                    if !ok_name {
                        bad(format!("{path}: not a tag event"));
                        continue;
                    }
                    if let Err(e) = tags::read_event(ds, &l.rel) {
                        bad(format!("tags: {}", chain(&e)));
                    }
                }
            }
            for a in ds.task_attempts_checked(&flow, &run)?.attempts {
                if a.reused || a.metrics.is_empty() {
                    continue;
                }
                let key = (a.step.clone(), a.index.dir_name(), a.source.attempt);
                let stored = counts.get(&key);
                for (name, s) in &a.metrics {
                    let n = stored.and_then(|c| c.get(name)).copied().unwrap_or(0);
                    if n != s.count {
                        let prefix = metrics::prefix(&flow, &a.source);
                        bad(format!(
                            "metrics of task {} attempt {}: the commit record counts {} points of `{name}`, {} holds {n}",
                            a.task_id(),
                            a.source.attempt,
                            s.count,
                            ds.path(&prefix)
                        ));
                    }
                }
            }
        }
        if run_filter.is_none() {
            alias_problems(ds, &flow, &mut out)?;
        }
    }
    Ok(out)
}

/// Every alias record of `flow` parses, is numbered, and names the alias it is under.
fn alias_problems(ds: &Datastore, flow: &str, out: &mut Vec<Unreadable>) -> Result<()> {
    let root = layout::aliases(flow);
    for l in ds.list(&root)? {
        let path = ds.path(&l.rel).to_string();
        let mut bad = |detail: String| {
            out.push(Unreadable {
                flow: flow.to_string(),
                run: "-".to_string(),
                detail,
            })
        };
        let rest = &l.rel[root.len().min(l.rel.len())..];
        let Some((name, file)) = rest.split_once('/') else {
            bad(format!("{path}: not an alias record"));
            continue;
        };
        let Some(n) = layout::parse_numbered(file) else {
            bad(format!("{path}: not an alias record"));
            continue;
        };
        match aliases::read_record(ds, &l.rel) {
            Ok(Some(r)) if r.name == name && r.number == n => {}
            Ok(Some(r)) => bad(format!(
                "{path}: the record says alias `{}` move {}",
                r.name, r.number
            )),
            Ok(None) => {}
            Err(e) => bad(format!("aliases: {}", chain(&e))),
        }
    }
    Ok(())
}
