//! The local read cache for remote datastores.
//!
//! Blobs are content-addressed, so a copy kept under its digest never goes stale: a
//! second read of an artifact from S3, GCS or Azure comes from local disk. Every read
//! still verifies the digest; a damaged cache entry is dropped and re-fetched.
//!
//! Configuration (environment, or [`CacheConfig`] in code):
//! - `FLOWLIB_CACHE=off` turns it off;
//! - `FLOWLIB_CACHE_DIR` moves it (default `$XDG_CACHE_HOME/flowlib` or `~/.cache/flowlib`);
//! - `FLOWLIB_CACHE_MAX` caps its size, like `20GiB` (default 10 GiB); the least recently
//!   used blobs are evicted first.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::store::Digest;

/// Settings of the local read cache.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Where cached blobs live (`None`: no cache).
    pub dir: Option<PathBuf>,
    /// Size cap in bytes.
    pub max_bytes: u64,
}

/// Default size cap: 10 GiB.
pub const DEFAULT_CACHE_MAX: u64 = 10 << 30;

impl CacheConfig {
    /// No cache.
    pub fn disabled() -> Self {
        CacheConfig {
            dir: None,
            max_bytes: 0,
        }
    }

    /// A cache in `dir` capped at `max_bytes`.
    pub fn at(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        CacheConfig {
            dir: Some(dir.into()),
            max_bytes,
        }
    }

    /// From `FLOWLIB_CACHE`, `FLOWLIB_CACHE_DIR` and `FLOWLIB_CACHE_MAX`.
    pub fn from_env() -> Self {
        let off = std::env::var("FLOWLIB_CACHE")
            .map(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "off" | "0" | "false" | "no"
                )
            })
            .unwrap_or(false);
        if off {
            return CacheConfig::disabled();
        }
        let max_bytes = std::env::var("FLOWLIB_CACHE_MAX")
            .ok()
            .and_then(|v| flowlib_units::parse_size(&v).ok())
            .unwrap_or(DEFAULT_CACHE_MAX);
        match cache_dir() {
            Some(d) => CacheConfig::at(d.join("blobs"), max_bytes),
            None => CacheConfig::disabled(),
        }
    }
}

/// The on-disk cache.
pub(crate) struct DiskCache {
    dir: PathBuf,
    max_bytes: u64,
    /// Bytes currently cached, once known (computed by a scan on first insert).
    total: Mutex<Option<u64>>,
}

impl DiskCache {
    pub(crate) fn new(config: &CacheConfig) -> Option<DiskCache> {
        let dir = config.dir.clone()?;
        if config.max_bytes == 0 {
            return None;
        }
        Some(DiskCache {
            dir,
            max_bytes: config.max_bytes,
            total: Mutex::new(None),
        })
    }

    pub(crate) fn path(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.dir.join(&hex[..2]).join(&hex[2..])
    }

    /// The cached file of `d`, if present; marks it recently used.
    pub(crate) fn lookup(&self, d: &Digest) -> Option<PathBuf> {
        let p = self.path(d);
        let f = std::fs::OpenOptions::new().write(true).open(&p).ok()?;
        let _ = f.set_modified(SystemTime::now());
        Some(p)
    }

    /// Drop a damaged entry.
    pub(crate) fn remove(&self, d: &Digest) {
        let p = self.path(d);
        if let Ok(m) = std::fs::metadata(&p) {
            if std::fs::remove_file(&p).is_ok() {
                if let Some(t) = self.total.lock().unwrap().as_mut() {
                    *t = t.saturating_sub(m.len());
                }
            }
        }
    }

    /// A temporary file to fill; [`commit`](Self::commit) moves it into place.
    pub(crate) fn staging(&self, d: &Digest) -> Option<(PathBuf, std::fs::File)> {
        let dir = self.dir.join("tmp");
        std::fs::create_dir_all(&dir).ok()?;
        let p = dir.join(format!("{}-{}", d.short(), crate::store::unique_name()));
        let f = std::fs::File::create(&p).ok()?;
        Some((p, f))
    }

    /// Whether a blob of `size` bytes may be cached at all.
    pub(crate) fn accepts(&self, size: u64) -> bool {
        size <= self.max_bytes / 2
    }

    /// Move a verified staging file into the cache and evict if over the cap.
    pub(crate) fn commit(&self, staging: &Path, d: &Digest, size: u64) {
        let dest = self.path(d);
        if let Some(parent) = dest.parent() {
            if std::fs::create_dir_all(parent).is_err() {
                let _ = std::fs::remove_file(staging);
                return;
            }
        }
        if std::fs::rename(staging, &dest).is_err() {
            let _ = std::fs::remove_file(staging);
            return;
        }
        let over = {
            let mut total = self.total.lock().unwrap();
            let t = total.get_or_insert_with(|| scan(&self.dir).iter().map(|e| e.1).sum());
            *t += size;
            *t > self.max_bytes
        };
        if over {
            self.evict();
        }
    }

    /// Store small bytes directly.
    pub(crate) fn put_bytes(&self, d: &Digest, bytes: &[u8]) {
        if !self.accepts(bytes.len() as u64) || self.path(d).exists() {
            return;
        }
        if let Some((p, mut f)) = self.staging(d) {
            use std::io::Write;
            if f.write_all(bytes).is_ok() {
                drop(f);
                self.commit(&p, d, bytes.len() as u64);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
    }

    /// Evict least recently used entries down to 90% of the cap.
    fn evict(&self) {
        let mut entries = scan(&self.dir);
        entries.sort_by_key(|e| e.2);
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        let target = self.max_bytes / 10 * 9;
        for (path, size, _) in entries {
            if total <= target {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= size;
            }
        }
        *self.total.lock().unwrap() = Some(total);
    }
}

/// Cached files: (path, size, last use).
fn scan(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for sub in rd.flatten() {
        if sub.file_name() == "tmp" {
            continue;
        }
        let Ok(files) = std::fs::read_dir(sub.path()) else {
            continue;
        };
        for f in files.flatten() {
            if let Ok(m) = f.metadata() {
                if m.is_file() {
                    out.push((
                        f.path(),
                        m.len(),
                        m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    ));
                }
            }
        }
    }
    out
}

/// flowlib's per-user cache directory: `FLOWLIB_CACHE_DIR`, else `$XDG_CACHE_HOME/flowlib`,
/// else `~/.cache/flowlib`.
pub(crate) fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("FLOWLIB_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("flowlib"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("flowlib"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_beyond_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::new(&CacheConfig::at(dir.path(), 3500)).unwrap();
        let blobs: Vec<(Digest, Vec<u8>)> = (0..5u8)
            .map(|i| {
                let b = vec![i; 1000];
                (Digest::of(&b), b)
            })
            .collect();
        for (d, b) in &blobs[..2] {
            cache.put_bytes(d, b);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(cache.lookup(&blobs[0].0).is_some()); // now the most recently used
        std::thread::sleep(std::time::Duration::from_millis(20));
        for (d, b) in &blobs[2..] {
            cache.put_bytes(d, b);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let present: Vec<bool> = blobs.iter().map(|(d, _)| cache.path(d).exists()).collect();
        assert!(
            present.iter().filter(|p| **p).count() * 1000 <= 3500,
            "{present:?}"
        );
        assert!(
            !present[1],
            "the least recently used entry went first: {present:?}"
        );
        assert!(present[4], "{present:?}");
        assert!(CacheConfig::disabled().dir.is_none());
    }
}
