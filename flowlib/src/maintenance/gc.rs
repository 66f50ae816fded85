//! `gc`: delete what no committed run references, once it is older than the grace period.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::maintenance::references::references;
use crate::store::datastore::Listed;
use crate::store::layout;
use crate::store::{Backend, Datastore};

/// What `gc` found.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct GcReport {
    /// Nothing was deleted: `deleted` lists what would have been.
    pub dry_run: bool,
    /// Blobs deleted (or that would be, with `--dry-run`).
    pub blobs: usize,
    /// Their total size.
    pub bytes: u64,
    /// Orphaned records deleted: uncommitted manifests and staging files.
    pub orphans: usize,
    /// Unreferenced objects kept because they are younger than the grace period.
    pub kept_young: usize,
    /// Everything deleted (or that would be), in the order gc went through it.
    pub deleted: Vec<Deleted>,
}

/// One object `gc` deleted, or would delete.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Deleted {
    /// Path relative to the datastore root; for an interrupted local write, the file's
    /// path on disk.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Why it is garbage.
    pub kind: Garbage,
}

/// Why an object is garbage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Garbage {
    /// A blob no committed run references.
    Blob,
    /// A manifest no commit record names (an attempt that never committed, or lost a
    /// commit race).
    Manifest,
    /// A staging object of a large write, or a task spec, whose writer is gone.
    Transient,
    /// The staging file of an interrupted local write (`name#N`).
    InterruptedWrite,
}

/// Delete unreferenced blobs and orphaned records older than `grace`; with `dry_run`,
/// only report what would go.
pub fn gc(ds: &Datastore, dry_run: bool, grace: Duration) -> Result<GcReport> {
    // List first, then read references: anything committed after the listing references
    // objects that are either listed (and then young) or not listed at all.
    let blobs = ds.list(layout::BLOBS)?;
    let manifests = ds.list(layout::MANIFESTS)?;
    // Staging objects of killed large writes and task specs are never referenced once
    // their writer is gone: they only wait out the grace period.
    let mut transient = ds.list(layout::TMP)?;
    transient.extend(ds.list(layout::SPECS)?);
    transient.extend(ds.list(layout::QUARANTINE)?);
    let refs = references(ds, None, None)?;
    if !refs.unreadable.is_empty() {
        let problems: Vec<String> = refs.unreadable.iter().map(|u| u.to_string()).collect();
        return Err(Error::metadata(
            ds.url(),
            format!(
                "gc stopped: the datastore has unreadable metadata, so references cannot be trusted: {}; run `verify`",
                problems.join("; ")
            ),
        ));
    }
    let mut sweep = Sweep {
        ds,
        cutoff: chrono::Utc::now()
            - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX),
        report: GcReport {
            dry_run,
            ..GcReport::default()
        },
    };
    let referenced: HashSet<String> = refs.blobs.keys().map(layout::blob).collect();
    sweep.listed(&blobs, &referenced, Garbage::Blob)?;
    let referenced: HashSet<String> = refs.manifests.iter().map(layout::manifest).collect();
    sweep.listed(&manifests, &referenced, Garbage::Manifest)?;
    sweep.listed(&transient, &HashSet::new(), Garbage::Transient)?;
    // Staging files of interrupted local writes are invisible to listings.
    if let Backend::Local(root) = ds.backend() {
        sweep.interrupted_writes(root, SystemTime::now() - grace);
    }
    if !dry_run {
        ds.forget_known();
    }
    Ok(sweep.report)
}

/// One gc pass: what it deletes, and the report it fills.
struct Sweep<'a> {
    ds: &'a Datastore,
    cutoff: chrono::DateTime<chrono::Utc>,
    report: GcReport,
}

impl Sweep<'_> {
    /// Delete the listed objects that are not referenced and older than the cutoff.
    fn listed(
        &mut self,
        objects: &[Listed],
        referenced: &HashSet<String>,
        kind: Garbage,
    ) -> Result<()> {
        for obj in objects {
            if referenced.contains(&obj.rel) {
                continue;
            }
            if obj.last_modified > self.cutoff {
                self.report.kept_young += 1;
                continue;
            }
            if !self.report.dry_run {
                self.ds.delete(&obj.rel)?;
            }
            self.record(obj.rel.clone(), obj.size, kind);
        }
        Ok(())
    }

    /// Delete `name#N` staging files older than `cutoff` anywhere under a local root.
    fn interrupted_writes(&mut self, root: &Path, cutoff: SystemTime) {
        let mut stack = vec![root.to_path_buf()];
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
                if !is_staged(&e.file_name().to_string_lossy()) {
                    continue;
                }
                if meta.modified().map(|m| m > cutoff).unwrap_or(true) {
                    self.report.kept_young += 1;
                    continue;
                }
                if !self.report.dry_run {
                    let _ = std::fs::remove_file(&p);
                }
                self.record(
                    p.display().to_string(),
                    meta.len(),
                    Garbage::InterruptedWrite,
                );
            }
        }
    }

    fn record(&mut self, path: String, size: u64, kind: Garbage) {
        let r = &mut self.report;
        if kind == Garbage::Blob {
            r.blobs += 1;
            r.bytes += size;
        } else {
            r.orphans += 1;
        }
        r.deleted.push(Deleted { path, size, kind });
    }
}

/// `name#N`: the staging name of a local write in progress (or interrupted).
fn is_staged(name: &str) -> bool {
    name.split_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpenMode;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn staged(root: &Path, name: &str, age: Duration) -> std::path::PathBuf {
        let p = root.join(layout::TMP).join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "partial large write").unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
        p
    }

    #[test]
    fn gc_collects_tmp_staging_objects_older_than_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Datastore::open(dir.path().to_str().unwrap(), OpenMode::Create).unwrap();
        let old = staged(dir.path(), "old", 2 * DAY);
        let young = staged(dir.path(), "young", Duration::ZERO);
        let expected = Deleted {
            path: format!("{}old", layout::TMP),
            size: "partial large write".len() as u64,
            kind: Garbage::Transient,
        };

        let dry = gc(&ds, true, DAY).unwrap();
        assert_eq!(dry.deleted, std::slice::from_ref(&expected), "{dry:?}");
        assert!(old.exists(), "a dry run deletes nothing");

        let r = gc(&ds, false, DAY).unwrap();
        assert_eq!((r.blobs, r.orphans, r.kept_young), (0, 1, 1), "{r:?}");
        assert_eq!(r.deleted, [expected]);
        assert!(!old.exists(), "older than the grace period: deleted");
        assert!(young.exists(), "younger than the grace period: kept");
    }

    #[test]
    fn staged_names() {
        assert!(is_staged("abc#3"));
        assert!(!is_staged("abc#"));
        assert!(!is_staged("abc#x1"));
        assert!(!is_staged("abc"));
    }
}
