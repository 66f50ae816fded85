//! The datastore: where blobs and metadata live, behind any `object_store` backend.
//!
//! The store layout (every key prefix) is in [`layout`](crate::store::layout); opening a
//! backend from a URL is in `store/backend.rs`; the I/O (retries, create-only writes,
//! listing) is in `datastore/io.rs`.
//!
//! Storage code is async (object_store); this module exposes a blocking facade. Local and
//! in-memory stores run their futures inline on the calling thread (their I/O is blocking
//! anyway, so this avoids a thread hop per operation); remote stores run on a small tokio
//! runtime owned by the datastore.

mod io;

pub(crate) use io::Listed;

use std::collections::{HashMap, VecDeque};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::backend::{open_backend, Exec, Opened};
use crate::store::cache::{CacheConfig, DiskCache};
use crate::store::layout::MARKER;
use crate::store::Digest;

/// Environment variable naming the default datastore.
pub const DATASTORE_ENV: &str = "FLOWLIB_DATASTORE";
/// The default datastore location, relative to the working directory.
pub const DEFAULT_DATASTORE: &str = ".flowlib";

const FORMAT: &str = "flowlib-datastore";
/// 2: a task attempt is one object, its commit record carrying its manifest
/// (`meta/commit.rs`). A store of version 1 is read as it is and marked 2 when a writer
/// opens it, so that an older flowlib refuses it with a clear error instead of misreading
/// the new records; its version 1 records stay readable.
const FORMAT_VERSION: u32 = 2;

/// How long a process trusts its memory that a blob exists, and how old a reused blob may
/// get before its timestamp is refreshed. `gc` is safe next to runs in progress while its
/// grace period is at least twice this plus the longest time between a task storing a blob
/// and committing it (the argument is in `maintenance/gc.rs`).
pub(crate) const KNOWN_TTL: Duration = Duration::from_secs(3600);

/// Blobs up to this size are cached in memory after a read or a write.
const CACHE_MAX_BLOB: u64 = 1 << 20;
/// Total size of the in-memory blob cache.
const CACHE_CAPACITY: u64 = 64 << 20;
/// Blobs smaller than this are copied into the cache rather than shared (see `cache_put`).
const TIGHT_COPY_BELOW: usize = 4096;
/// What the cache spends on an entry besides the blob's bytes (map slot, digest, queue
/// slot, `Bytes` header): counted, so that 100,000 tiny blobs do not pass as a few KiB.
const CACHE_ENTRY_OVERHEAD: u64 = 128;

/// Refuse a marker of another format or of a newer version than this flowlib reads.
fn check_format(m: &Marker) -> std::result::Result<(), String> {
    if m.format != FORMAT {
        return Err(format!(
            "{MARKER} says format `{}`, expected `{FORMAT}`",
            m.format
        ));
    }
    if m.version > FORMAT_VERSION {
        return Err(format!(
            "datastore format version {} is newer than this flowlib supports ({FORMAT_VERSION}); upgrade flowlib",
            m.version
        ));
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct Marker {
    format: String,
    version: u32,
    created: String,
}

/// The kind of backend behind a datastore.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// A directory on the local filesystem.
    Local(PathBuf),
    /// A process-local in-memory store (`memory://name`), for tests.
    Memory,
    /// Amazon S3 or an S3-compatible server.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
}

/// How a caller intends to use a datastore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The datastore must already exist.
    Existing,
    /// Create it if missing (used by `run`).
    Create,
}

/// A content-addressed datastore. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct Datastore {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    backend: Backend,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    exec: Exec,
    cache: Mutex<BlobCache>,
    /// Local read cache of a remote store.
    disk: Option<DiskCache>,
    known: Mutex<HashMap<Digest, Instant>>,
    /// Presigns download URLs (cloud stores).
    signer: Option<crate::store::backend::SignerRef>,
    /// Artifacts encoded in at most this many bytes are held inline in their task's
    /// manifest (see [`DatastoreBuilder::inline_limit`]).
    inline_limit: usize,
}

impl std::fmt::Debug for Datastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datastore")
            .field("url", &self.inner.url)
            .finish()
    }
}

/// Builder returned by [`Datastore::builder`].
#[derive(Clone, Debug)]
pub struct DatastoreBuilder {
    url: String,
    mode: OpenMode,
    cache: Option<CacheConfig>,
    options: Vec<(String, String)>,
    inline_limit: Option<usize>,
}

/// The environment variable that sets [`DatastoreBuilder::inline_limit`] for a process.
pub const INLINE_LIMIT_ENV: &str = "FLOWLIB_INLINE_LIMIT";

/// The largest inline limit accepted: above it an artifact is always an object.
pub const MAX_INLINE_LIMIT: usize = 64 << 10;

/// The inline limit of `FLOWLIB_INLINE_LIMIT`, else the default (1 KiB).
fn inline_limit_from_env() -> Result<usize> {
    let Ok(v) = std::env::var(INLINE_LIMIT_ENV) else {
        return Ok(crate::store::cas::INLINE_LIMIT);
    };
    match v.trim().parse::<usize>() {
        Ok(n) if n <= MAX_INLINE_LIMIT => Ok(n),
        _ => Err(Error::invalid(format!(
            "{INLINE_LIMIT_ENV}=`{v}` is not a size in bytes from 0 to {MAX_INLINE_LIMIT}"
        ))),
    }
}

impl DatastoreBuilder {
    /// Artifacts whose encoding is at most `bytes` long are held inline in the manifest of
    /// the task that writes them, not stored as objects under `blobs/` (default 1 KiB,
    /// or `FLOWLIB_INLINE_LIMIT`; at most [`MAX_INLINE_LIMIT`]). `0` stores every artifact
    /// as an object, for tools that read `blobs/` directly. Only writing depends on it:
    /// every reader reads both forms, so processes with different limits share a store.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let ds = flowlib::Datastore::builder(dir.path().to_str().unwrap())
    ///     .inline_limit(0)
    ///     .open()?;
    /// # Ok::<(), flowlib::Error>(())
    /// ```
    pub fn inline_limit(mut self, bytes: usize) -> Self {
        self.inline_limit = Some(bytes);
        self
    }

    /// Require an existing datastore, or create one (the default).
    pub fn mode(mut self, mode: OpenMode) -> Self {
        self.mode = mode;
        self
    }

    /// The local read cache for remote stores (default: [`CacheConfig::from_env`](crate::CacheConfig::from_env)).
    pub fn cache(mut self, cache: CacheConfig) -> Self {
        self.cache = Some(cache);
        self
    }

    /// An object_store configuration key for the remote backend, like `aws_endpoint`,
    /// `aws_region`, `google_service_account` or `azure_storage_account_name`; it overrides
    /// the same setting from the environment.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.push((key.into(), value.into()));
        self
    }

    /// Open the datastore.
    pub fn open(self) -> Result<Datastore> {
        let cache = self.cache.unwrap_or_else(CacheConfig::from_env);
        let inline_limit = match self.inline_limit {
            Some(n) if n > MAX_INLINE_LIMIT => {
                return Err(Error::invalid(format!(
                    "an inline limit of {n} bytes is above the maximum, {MAX_INLINE_LIMIT}"
                )))
            }
            Some(n) => n,
            None => inline_limit_from_env()?,
        };
        Datastore::open_configured(&self.url, self.mode, cache, &self.options, inline_limit)
    }
}

impl Datastore {
    /// Open the datastore named by `url`: a path, `file://path`, `memory://name`,
    /// `s3://bucket/prefix`, `gs://bucket/prefix` or `az://container/prefix`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use flowlib::{Datastore, OpenMode};
    /// let ds = Datastore::open(dir.path().to_str().unwrap(), OpenMode::Create)?;
    /// assert!(ds.url().starts_with("file://"));
    /// # Ok::<(), flowlib::Error>(())
    /// ```
    pub fn open(url: &str, mode: OpenMode) -> Result<Datastore> {
        Datastore::builder(url).mode(mode).open()
    }

    /// Configure a datastore: open mode, local read cache, and object_store options.
    ///
    /// ```no_run
    /// use flowlib::{CacheConfig, Datastore, OpenMode};
    /// let ds = Datastore::builder("s3://my-bucket/flows")
    ///     .mode(OpenMode::Existing)
    ///     .option("aws_endpoint", "http://127.0.0.1:9000")
    ///     .cache(CacheConfig::disabled())
    ///     .open()?;
    /// # Ok::<(), flowlib::Error>(())
    /// ```
    pub fn builder(url: impl Into<String>) -> DatastoreBuilder {
        DatastoreBuilder {
            url: url.into(),
            mode: OpenMode::Create,
            cache: None,
            options: Vec::new(),
            inline_limit: None,
        }
    }

    /// [`open`](Self::open) with an explicit local read cache for remote stores (local
    /// and in-memory stores are never cached).
    pub fn open_with(url: &str, mode: OpenMode, cache: CacheConfig) -> Result<Datastore> {
        Datastore::builder(url).mode(mode).cache(cache).open()
    }

    fn open_configured(
        url: &str,
        mode: OpenMode,
        cache: CacheConfig,
        options: &[(String, String)],
        inline_limit: usize,
    ) -> Result<Datastore> {
        let url = url.trim();
        if url.is_empty() {
            return Err(Error::invalid("the datastore location is empty"));
        }
        let Opened {
            backend,
            store,
            prefix,
            exec,
            url,
            signer,
        } = open_backend(url, mode, options)?;
        let disk = match backend {
            Backend::Local(_) | Backend::Memory => None,
            _ => DiskCache::new(&cache),
        };
        let ds = Datastore {
            inner: Arc::new(Inner {
                url,
                backend,
                store,
                prefix,
                exec,
                cache: Mutex::new(BlobCache::default()),
                disk,
                known: Mutex::new(HashMap::new()),
                signer,
                inline_limit,
            }),
        };
        ds.check_marker(mode)?;
        Ok(ds)
    }

    /// Open the datastore from `--datastore`, else `FLOWLIB_DATASTORE`, else `./.flowlib`.
    pub fn from_env_or(flag: Option<&str>, mode: OpenMode) -> Result<Datastore> {
        let env = std::env::var(DATASTORE_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty());
        let url = flag
            .map(str::to_string)
            .or(env)
            .unwrap_or_else(|| DEFAULT_DATASTORE.to_string());
        Datastore::open(&url, mode)
    }

    /// Artifacts encoded in at most this many bytes are held inline in their task's
    /// manifest (see [`DatastoreBuilder::inline_limit`]).
    pub fn inline_limit(&self) -> usize {
        self.inner.inline_limit
    }

    /// The datastore URL (normalized: local paths are absolute `file://` URLs).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Whether other processes can open this store (everything but `memory://`).
    pub(crate) fn is_shared(&self) -> bool {
        !matches!(self.inner.backend, Backend::Memory)
    }

    /// Whether the store is a local directory.
    pub(crate) fn is_local(&self) -> bool {
        matches!(self.inner.backend, Backend::Local(_))
    }

    /// The backend kind.
    pub fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// A URL that downloads the object at `rel` (relative to the datastore root) without
    /// credentials until `expires`, for stores that can presign (S3, GCS, Azure); `None`
    /// for local and in-memory stores. Remote jobs fetch the flow binary through it.
    pub(crate) fn signed_url(
        &self,
        rel: &str,
        expires: std::time::Duration,
    ) -> Result<Option<String>> {
        // An `Arc` with a cloud backend compiled in, `Infallible` (Copy) without one.
        #[allow(clippy::clone_on_copy)]
        let Some(signer) = self.inner.signer.clone() else {
            return Ok(None);
        };
        #[cfg(not(any(feature = "aws", feature = "gcp", feature = "azure")))]
        {
            let _ = (rel, expires);
            match signer {}
        }
        #[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
        let path = self.path(rel);
        #[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
        let url = self.inner.exec.block_on(async move {
            signer
                .signed_url(object_store::signer::Method::GET, &path, expires)
                .await
                .map_err(|e| (path, e))
        });
        #[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
        url.map(|u| Some(u.to_string()))
            .map_err(|(path, e)| Error::store("presign", path.as_ref(), self.url(), e))
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    /// The local read cache, for remote stores that have one.
    pub(crate) fn disk_cache(&self) -> Option<&DiskCache> {
        self.inner.disk.as_ref()
    }

    fn check_marker(&self, mode: OpenMode) -> Result<()> {
        let refuse = |message: String| Error::Datastore {
            url: self.url().into(),
            message,
        };
        // A marker that appears between reading it and listing the folder was written by a
        // concurrent first open (#8): read it again rather than refuse the folder.
        for _ in 0..3 {
            let marker = match self.get_json::<Marker>(MARKER) {
                Ok(m) => m,
                Err(Error::Metadata { message, .. }) => {
                    return Err(refuse(format!("{MARKER} is unreadable: {message}")))
                }
                Err(e) => return Err(e),
            };
            if let Some(m) = marker {
                return check_format(&m).map_err(refuse);
            }
            // No marker: an empty location becomes a datastore; anything else is refused,
            // so a typo in --datastore never scatters files into an unrelated directory.
            if !self.is_empty_location()? {
                continue;
            }
            return match mode {
                OpenMode::Existing => Err(refuse(
                    "no flowlib datastore here yet (nothing has run against it)".into(),
                )),
                OpenMode::Create => {
                    let marker = Marker {
                        format: FORMAT.into(),
                        version: FORMAT_VERSION,
                        created: crate::store::now_rfc3339(),
                    };
                    // Two processes may race to create it: either write is fine.
                    self.create_json(MARKER, &marker).map(|_| ())
                }
            };
        }
        Err(refuse(format!(
            "this location is not empty and is not a flowlib datastore (no {MARKER}); refusing to use it"
        )))
    }

    /// Mark the store as of this flowlib's format before writing records of it (a run
    /// does, at its start). A store of an older format stays readable as it is: its
    /// records are read by their own version. Every upgrading writer writes the same
    /// version, so a race between them is harmless.
    pub(crate) fn mark_current_format(&self) -> Result<()> {
        let Some(m) = self.get_json::<Marker>(MARKER)? else {
            return Ok(());
        };
        if m.version >= FORMAT_VERSION {
            return Ok(());
        }
        let marker = Marker {
            version: FORMAT_VERSION,
            ..m
        };
        let bytes = serde_json::to_vec_pretty(&marker).expect("marker serializes");
        self.put_bytes(MARKER, bytes.into(), object_store::PutMode::Overwrite)
    }

    fn is_empty_location(&self) -> Result<bool> {
        if let Backend::Local(dir) = &self.inner.backend {
            // A concurrent first open is creating the marker: object_store's local create-only
            // write stages it as `datastore.json#<n>` and links it into place. Such a folder is
            // still empty for our purpose (the race of #8: two runs starting in a new folder).
            let staging = format!("{MARKER}#");
            return match std::fs::read_dir(dir) {
                Ok(it) => Ok(it
                    .flatten()
                    .all(|e| e.file_name().to_string_lossy().starts_with(&staging))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
                Err(e) => Err(Error::io(format!("reading {}", dir.display()), e)),
            };
        }
        self.is_empty_prefix()
    }

    pub(crate) fn cache_get(&self, digest: &Digest) -> Option<Bytes> {
        self.inner.cache.lock().unwrap().get(digest)
    }

    pub(crate) fn cache_put(&self, digest: Digest, bytes: &Bytes) {
        if bytes.len() as u64 <= CACHE_MAX_BLOB {
            // A small blob's bytes are often a view of a larger buffer (the one it was
            // encoded or read into), which a clone would keep alive whole: hold a tight
            // copy, so the cache holds about what it counts.
            let held = if bytes.len() < TIGHT_COPY_BELOW {
                Bytes::copy_from_slice(bytes)
            } else {
                bytes.clone()
            };
            self.inner.cache.lock().unwrap().put(digest, held);
        }
    }

    /// Whether this process saw the blob stored within the last [`KNOWN_TTL`]. The bound
    /// keeps `gc` safe next to long-running processes (see `maintenance/gc.rs`).
    pub(crate) fn is_known(&self, digest: &Digest) -> bool {
        self.inner
            .known
            .lock()
            .unwrap()
            .get(digest)
            .is_some_and(|t| t.elapsed() < KNOWN_TTL)
    }

    pub(crate) fn mark_known(&self, digest: Digest) {
        self.inner
            .known
            .lock()
            .unwrap()
            .insert(digest, Instant::now());
    }

    /// Forget one blob: it was found corrupt and moved aside, so the next write of its
    /// value must store it again, and no copy of it in memory may be served.
    pub(crate) fn forget_blob(&self, digest: &Digest) {
        self.inner.known.lock().unwrap().remove(digest);
        self.inner.cache.lock().unwrap().remove(digest);
    }

    /// Forget what this process believes is stored (after `gc` deleted blobs).
    pub(crate) fn forget_known(&self) {
        self.inner.known.lock().unwrap().clear();
        *self.inner.cache.lock().unwrap() = BlobCache::default();
    }
}

/// Bounded FIFO cache of small blobs, keyed by digest (content-addressed entries never go stale).
#[derive(Default)]
struct BlobCache {
    map: HashMap<Digest, Bytes>,
    order: VecDeque<Digest>,
    bytes: u64,
}

impl BlobCache {
    fn get(&self, d: &Digest) -> Option<Bytes> {
        self.map.get(d).cloned()
    }

    /// Drop an entry (its digest stays in `order` until evicted; eviction skips it).
    fn remove(&mut self, d: &Digest) {
        if let Some(b) = self.map.remove(d) {
            self.bytes -= b.len() as u64 + CACHE_ENTRY_OVERHEAD;
        }
    }

    fn put(&mut self, d: Digest, b: Bytes) {
        if self.map.contains_key(&d) {
            return;
        }
        self.bytes += b.len() as u64 + CACHE_ENTRY_OVERHEAD;
        self.map.insert(d, b);
        self.order.push_back(d);
        while self.bytes > CACHE_CAPACITY {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(b) = self.map.remove(&old) {
                self.bytes -= b.len() as u64 + CACHE_ENTRY_OVERHEAD;
            }
        }
    }
}

/// Whether `p` looks like a local datastore directory.
pub fn is_datastore_dir(p: &FsPath) -> bool {
    p.join(MARKER).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::PutMode;

    #[test]
    fn local_open_create_and_refuse_foreign_directory() {
        let dir = tempfile::tempdir().unwrap();
        let ds_path = dir.path().join("store");
        let url = ds_path.to_str().unwrap();
        let err = Datastore::open(url, OpenMode::Existing).unwrap_err();
        assert!(err.to_string().contains("no such directory"), "{err}");
        let ds = Datastore::open(url, OpenMode::Create).unwrap();
        assert!(is_datastore_dir(&ds_path));
        Datastore::open(&format!("file://{url}"), OpenMode::Existing).unwrap();
        drop(ds);

        let foreign = dir.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("notes.txt"), "hello").unwrap();
        let err = Datastore::open(foreign.to_str().unwrap(), OpenMode::Create).unwrap_err();
        assert!(err.to_string().contains("not a flowlib datastore"), "{err}");
        assert!(!foreign.join(MARKER).exists());

        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = Datastore::open(file.to_str().unwrap(), OpenMode::Create).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    /// Regression (#8): two runs starting at once in a new folder must both get the
    /// datastore; one used to see the other's half-created marker and refuse the folder.
    #[test]
    fn concurrent_first_opens_of_a_new_folder_all_succeed() {
        for round in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let url = dir.path().join("ds").to_str().unwrap().to_string();
            let results: Vec<Result<Datastore>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..6)
                    .map(|_| s.spawn(|| Datastore::open(&url, OpenMode::Create)))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for r in results {
                if let Err(e) = r {
                    panic!("round {round}: {e}");
                }
            }
            assert!(is_datastore_dir(&dir.path().join("ds")));
        }
    }

    #[test]
    fn unknown_scheme_is_a_clear_error() {
        let err = Datastore::open("ftp://x/y", OpenMode::Create)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unsupported datastore URL scheme `ftp://`"),
            "{err}"
        );
    }

    #[test]
    fn memory_store_is_shared_by_name() {
        let a = Datastore::open("memory://shared-test", OpenMode::Create).unwrap();
        a.put_bytes("x/y", Bytes::from_static(b"1"), PutMode::Create)
            .unwrap();
        let b = Datastore::open("memory://shared-test", OpenMode::Existing).unwrap();
        assert_eq!(
            b.get_bytes("x/y").unwrap().unwrap(),
            Bytes::from_static(b"1")
        );
        let err = b
            .put_bytes("x/y", Bytes::from_static(b"2"), PutMode::Create)
            .unwrap_err();
        assert!(err.is_already_exists());
        assert_eq!(b.list_dirs("").unwrap(), vec!["x".to_string()]);
    }
}
