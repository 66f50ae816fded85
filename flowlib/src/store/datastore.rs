//! The datastore: where blobs and metadata live, behind any `object_store` backend.
//!
//! The store layout (every key prefix) is in [`layout`](crate::store::layout).
//!
//! Storage code is async (object_store); this module exposes a blocking facade. Local and
//! in-memory stores run their futures inline on the calling thread (their I/O is blocking
//! anyway, so this avoids a thread hop per operation); remote stores run on a small tokio
//! runtime owned by the datastore.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::layout::MARKER;
use crate::store::Digest;

/// Environment variable naming the default datastore.
pub const DATASTORE_ENV: &str = "FLOWLIB_DATASTORE";
/// The default datastore location, relative to the working directory.
pub const DEFAULT_DATASTORE: &str = ".flowlib";

const FORMAT: &str = "flowlib-datastore";
const FORMAT_VERSION: u32 = 1;

/// How long a process trusts its memory that a blob exists, and how old a reused blob may
/// get before its timestamp is refreshed. Must stay well below `gc`'s grace period.
pub(crate) const KNOWN_TTL: Duration = Duration::from_secs(3600);

/// Blobs up to this size are cached in memory after a read or a write.
const CACHE_MAX_BLOB: u64 = 1 << 20;
/// Total size of the in-memory blob cache.
const CACHE_CAPACITY: u64 = 64 << 20;

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

pub(crate) enum Exec {
    Inline,
    #[cfg_attr(
        not(any(feature = "aws", feature = "gcp", feature = "azure")),
        allow(dead_code)
    )]
    Tokio(tokio::runtime::Runtime),
}

impl Exec {
    /// Run a storage future to completion from synchronous code.
    pub(crate) fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        match self {
            Exec::Inline => futures::executor::block_on(fut),
            Exec::Tokio(rt) => {
                if tokio::runtime::Handle::try_current().is_ok() {
                    // Called from inside someone's async runtime: blocking here would
                    // stall it, and nesting `block_on` panics. Use a scoped helper thread.
                    std::thread::scope(|s| {
                        s.spawn(|| rt.block_on(fut))
                            .join()
                            .unwrap_or_else(|p| std::panic::resume_unwind(p))
                    })
                } else {
                    rt.block_on(fut)
                }
            }
        }
    }
}

/// A content-addressed datastore. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct Datastore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) url: String,
    pub(crate) backend: Backend,
    pub(crate) store: Arc<dyn ObjectStore>,
    prefix: String,
    pub(crate) exec: Exec,
    cache: Mutex<BlobCache>,
    /// Local read cache of a remote store.
    pub(crate) disk: Option<crate::store::cache::DiskCache>,
    known: Mutex<HashMap<Digest, Instant>>,
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
    cache: Option<crate::store::cache::CacheConfig>,
    options: Vec<(String, String)>,
}

impl DatastoreBuilder {
    /// Require an existing datastore, or create one (the default).
    pub fn mode(mut self, mode: OpenMode) -> Self {
        self.mode = mode;
        self
    }

    /// The local read cache for remote stores (default: [`CacheConfig::from_env`](crate::CacheConfig::from_env)).
    pub fn cache(mut self, cache: crate::store::cache::CacheConfig) -> Self {
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
        let cache = self
            .cache
            .unwrap_or_else(crate::store::cache::CacheConfig::from_env);
        Datastore::open_configured(&self.url, self.mode, cache, &self.options)
    }
}

/// One listed object.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    /// Path relative to the datastore root.
    pub(crate) rel: String,
    pub(crate) size: u64,
    pub(crate) last_modified: chrono::DateTime<chrono::Utc>,
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
        }
    }

    /// [`open`](Self::open) with an explicit local read cache for remote stores (local
    /// and in-memory stores are never cached).
    pub fn open_with(
        url: &str,
        mode: OpenMode,
        cache: crate::store::cache::CacheConfig,
    ) -> Result<Datastore> {
        Datastore::builder(url).mode(mode).cache(cache).open()
    }

    fn open_configured(
        url: &str,
        mode: OpenMode,
        cache: crate::store::cache::CacheConfig,
        options: &[(String, String)],
    ) -> Result<Datastore> {
        let url = url.trim();
        if url.is_empty() {
            return Err(Error::invalid("the datastore location is empty"));
        }
        let (backend, store, prefix, exec, display) = open_backend(url, mode, options)?;
        let backend_is_remote = !matches!(backend, Backend::Local(_) | Backend::Memory);
        let ds = Datastore {
            inner: Arc::new(Inner {
                url: display,
                backend,
                store,
                prefix,
                exec,
                cache: Mutex::new(BlobCache::default()),
                disk: match backend_is_remote {
                    true => crate::store::cache::DiskCache::new(&cache),
                    false => None,
                },
                known: Mutex::new(HashMap::new()),
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

    /// The datastore URL (normalized: local paths are absolute `file://` URLs).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Whether the store is a local directory.
    pub(crate) fn is_local(&self) -> bool {
        matches!(self.inner.backend, Backend::Local(_))
    }

    /// The backend kind.
    pub fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    fn check_marker(&self, mode: OpenMode) -> Result<()> {
        match self.get_json::<Marker>(MARKER) {
            Ok(Some(m)) => {
                if m.format != FORMAT {
                    return Err(Error::Datastore {
                        url: self.url().into(),
                        message: format!(
                            "{MARKER} says format `{}`, expected `{FORMAT}`",
                            m.format
                        ),
                    });
                }
                if m.version > FORMAT_VERSION {
                    return Err(Error::Datastore {
                        url: self.url().into(),
                        message: format!(
                            "datastore format version {} is newer than this flowlib supports ({FORMAT_VERSION}); upgrade flowlib",
                            m.version
                        ),
                    });
                }
                Ok(())
            }
            Ok(None) => {
                // No marker: an empty location becomes a datastore; anything else is refused,
                // so a typo in --datastore never scatters files into an unrelated directory.
                let empty = self.is_empty_location()?;
                if !empty {
                    return Err(Error::Datastore {
                        url: self.url().into(),
                        message: format!(
                            "this location is not empty and is not a flowlib datastore (no {MARKER}); refusing to use it"
                        ),
                    });
                }
                match mode {
                    OpenMode::Existing => Err(Error::Datastore {
                        url: self.url().into(),
                        message: "no flowlib datastore here yet (nothing has run against it)"
                            .into(),
                    }),
                    OpenMode::Create => {
                        let marker = Marker {
                            format: FORMAT.into(),
                            version: FORMAT_VERSION,
                            created: crate::meta::now_rfc3339(),
                        };
                        // Two processes may race to create it: either write is fine.
                        self.create_json(MARKER, &marker).map(|_| ())
                    }
                }
            }
            Err(Error::Metadata { message, .. }) => Err(Error::Datastore {
                url: self.url().into(),
                message: format!("{MARKER} is unreadable: {message}"),
            }),
            Err(e) => Err(e),
        }
    }

    fn is_empty_location(&self) -> Result<bool> {
        if let Backend::Local(dir) = &self.inner.backend {
            return match std::fs::read_dir(dir) {
                Ok(mut it) => Ok(it.next().is_none()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
                Err(e) => Err(Error::io(format!("reading {}", dir.display()), e)),
            };
        }
        let prefix = self.path("");
        let prefix = if prefix.as_ref().is_empty() {
            None
        } else {
            Some(&prefix)
        };
        let listed = self
            .block_on(self.inner.store.list_with_delimiter(prefix))
            .map_err(|e| Error::store("list", self.inner.prefix.as_str(), self.url(), e))?;
        Ok(listed.objects.is_empty() && listed.common_prefixes.is_empty())
    }

    pub(crate) fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        self.inner.exec.block_on(fut)
    }

    /// Object path for a path relative to the datastore root.
    pub(crate) fn path(&self, rel: &str) -> Path {
        let full = if self.inner.prefix.is_empty() {
            rel.to_string()
        } else if rel.is_empty() {
            self.inner.prefix.clone()
        } else {
            format!("{}/{}", self.inner.prefix, rel)
        };
        Path::from_iter(full.split('/').filter(|s| !s.is_empty()))
    }

    fn rel_of(&self, p: &Path) -> String {
        let s = p.as_ref();
        if self.inner.prefix.is_empty() {
            s.to_string()
        } else {
            s.strip_prefix(&self.inner.prefix)
                .map(|r| r.trim_start_matches('/').to_string())
                .unwrap_or_else(|| s.to_string())
        }
    }

    /// Run a storage operation, retrying transient failures of remote stores that
    /// object_store's own retries leave to the caller: a connection reset on a
    /// create-only put (not idempotent for it), a response cut in the middle of its body
    /// (lists, multipart completion). Callers only pass operations that are safe to repeat;
    /// a create-only put is, because [`create`](Self::create) recognises its own object.
    pub(crate) fn retry<T, Op, Fut>(&self, mut op: Op) -> object_store::Result<T>
    where
        Op: FnMut() -> Fut,
        Fut: Future<Output = object_store::Result<T>> + Send,
        T: Send,
    {
        let remote = matches!(self.inner.exec, Exec::Tokio(_));
        let mut delay = Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            match self.block_on(op()) {
                Err(e) if remote && attempt < 6 && is_transient(&e) => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(2));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Read an object; `None` if it does not exist.
    pub(crate) fn get_bytes(&self, rel: &str) -> Result<Option<Bytes>> {
        let path = self.path(rel);
        let store = &self.inner.store;
        let res = self.retry(|| async {
            match store.get(&path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        res.map_err(|e| Error::store("get", &path, self.url(), e))
    }

    /// Write an object. With `PutMode::Create`, an existing object yields an error for
    /// which [`Error::is_already_exists`] is true.
    pub(crate) fn put_bytes(&self, rel: &str, bytes: Bytes, mode: PutMode) -> Result<()> {
        let path = self.path(rel);
        let store = &self.inner.store;
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        self.retry(|| store.put_opts(&path, PutPayload::from(bytes.clone()), opts.clone()))
            .map(|_| ())
            .map_err(|e| Error::store("put", &path, self.url(), e))
    }

    pub(crate) fn delete(&self, rel: &str) -> Result<()> {
        let path = self.path(rel);
        match self.retry(|| self.inner.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store("delete", &path, self.url(), e)),
        }
    }

    /// Read and parse a JSON record; `None` if it does not exist.
    pub(crate) fn get_json<T: DeserializeOwned>(&self, rel: &str) -> Result<Option<T>> {
        match self.get_bytes(rel)? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::metadata(self.path(rel), format!("invalid JSON: {e}"))),
        }
    }

    /// Write a JSON record.
    pub(crate) fn put_json<T: Serialize>(
        &self,
        rel: &str,
        value: &T,
        mode: PutMode,
    ) -> Result<Bytes> {
        let bytes =
            Bytes::from(serde_json::to_vec_pretty(value).expect("metadata serializes to JSON"));
        self.put_bytes(rel, bytes.clone(), mode)?;
        Ok(bytes)
    }

    /// Create-only write that survives lost responses: when a retried request finds the
    /// object already there with exactly these bytes, this very write had succeeded.
    /// Returns false when someone else created the object first.
    pub(crate) fn create(&self, rel: &str, bytes: Bytes) -> Result<bool> {
        match self.put_bytes(rel, bytes.clone(), PutMode::Create) {
            Ok(()) => Ok(true),
            Err(e) if e.is_already_exists() => Ok(self.get_bytes(rel)?.is_some_and(|b| b == bytes)),
            Err(e) => Err(e),
        }
    }

    /// [`create`](Self::create) of a JSON record.
    pub(crate) fn create_json<T: Serialize>(&self, rel: &str, value: &T) -> Result<bool> {
        let bytes =
            Bytes::from(serde_json::to_vec_pretty(value).expect("metadata serializes to JSON"));
        self.create(rel, bytes)
    }

    /// Every object under `rel_prefix` (recursive).
    pub(crate) fn list(&self, rel_prefix: &str) -> Result<Vec<Listed>> {
        let prefix = self.path(rel_prefix);
        let store = self.inner.store.clone();
        let metas = self.retry(|| {
            let (store, prefix) = (store.clone(), prefix.clone());
            async move {
                let mut out = Vec::new();
                let mut stream = store.list(Some(&prefix));
                while let Some(item) = stream.next().await {
                    out.push(item?);
                }
                Ok::<_, object_store::Error>(out)
            }
        });
        let metas = metas.map_err(|e| Error::store("list", rel_prefix, self.url(), e))?;
        Ok(metas
            .into_iter()
            .map(|m| Listed {
                rel: self.rel_of(&m.location),
                size: m.size,
                last_modified: m.last_modified,
            })
            .collect())
    }

    /// The immediate "directories" under `rel_prefix`, sorted.
    pub(crate) fn list_dirs(&self, rel_prefix: &str) -> Result<Vec<String>> {
        let prefix = self.path(rel_prefix);
        let res = self
            .retry(|| self.inner.store.list_with_delimiter(Some(&prefix)))
            .map_err(|e| Error::store("list", rel_prefix, self.url(), e))?;
        let mut dirs: Vec<String> = res
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        dirs.sort();
        Ok(dirs)
    }

    pub(crate) fn cache_get(&self, digest: &Digest) -> Option<Bytes> {
        self.inner.cache.lock().unwrap().get(digest)
    }

    pub(crate) fn cache_put(&self, digest: Digest, bytes: &Bytes) {
        if bytes.len() as u64 <= CACHE_MAX_BLOB {
            self.inner.cache.lock().unwrap().put(digest, bytes.clone());
        }
    }

    /// Whether this process saw the blob stored within the last [`KNOWN_TTL`]. The bound
    /// keeps `gc` safe next to long-running processes (see `integrity`).
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

    /// Refresh the modification time of a blob being reused, so `gc`'s grace period
    /// protects it until the run that reuses it has committed.
    pub(crate) fn touch(&self, rel: &str, bytes: &Bytes) -> Result<()> {
        match &self.inner.backend {
            Backend::Local(root) => {
                let path = root.join(rel);
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io(format!("touching {}", path.display()), e))?;
                f.set_modified(std::time::SystemTime::now())
                    .map_err(|e| Error::io(format!("touching {}", path.display()), e))
            }
            _ => self.put_bytes(rel, bytes.clone(), PutMode::Overwrite),
        }
    }

    /// Forget what this process believes is stored (after `gc` deleted blobs).
    pub(crate) fn forget_known(&self) {
        self.inner.known.lock().unwrap().clear();
        *self.inner.cache.lock().unwrap() = BlobCache::default();
    }
}

/// Failures worth another try: transport errors and unparsable (cut) responses.
fn is_transient(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
    )
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

    fn put(&mut self, d: Digest, b: Bytes) {
        if self.map.contains_key(&d) {
            return;
        }
        self.bytes += b.len() as u64;
        self.map.insert(d, b);
        self.order.push_back(d);
        while self.bytes > CACHE_CAPACITY {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(b) = self.map.remove(&old) {
                self.bytes -= b.len() as u64;
            }
        }
    }
}

type Opened = (Backend, Arc<dyn ObjectStore>, String, Exec, String);

fn open_backend(url: &str, mode: OpenMode, options: &[(String, String)]) -> Result<Opened> {
    let lower = url.to_ascii_lowercase();
    if let Some(rest) = lower
        .strip_prefix("memory://")
        .map(|_| &url["memory://".len()..])
    {
        let name = rest.trim_matches('/').to_string();
        let store = memory_store(&name);
        return Ok((
            Backend::Memory,
            store,
            String::new(),
            Exec::Inline,
            format!("memory://{name}"),
        ));
    }
    let scheme = lower.split_once("://").map(|(s, _)| s.to_string());
    if !options.is_empty() && matches!(scheme.as_deref(), None | Some("file")) {
        return Err(Error::invalid(format!(
            "store options ({}) only apply to s3://, gs:// and az:// datastores",
            options
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    match scheme.as_deref() {
        None | Some("file") => {
            let raw = if scheme.is_some() { &url["file://".len()..] } else { url };
            open_local(raw, mode)
        }
        Some("s3") | Some("s3a") => crate::store::cloud::open_s3(url, options),
        Some("gs") => crate::store::cloud::open_gcs(url, options),
        Some("az") | Some("azure") | Some("abfs") | Some("abfss") => crate::store::cloud::open_azure(url, options),
        Some(other) => Err(Error::invalid(format!(
            "unsupported datastore URL scheme `{other}://` in `{url}`; use a path, file://, s3://, gs://, az:// or memory://"
        ))),
    }
}

fn open_local(raw: &str, mode: OpenMode) -> Result<Opened> {
    let raw = percent_decode(raw);
    let path = PathBuf::from(&raw);
    let abs = if path.is_absolute() {
        path
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("reading the current directory", e))?
            .join(path)
    };
    match std::fs::metadata(&abs) {
        Ok(m) if !m.is_dir() => {
            return Err(Error::Datastore {
                url: format!("file://{}", abs.display()),
                message: "exists but is not a directory".into(),
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if mode == OpenMode::Existing {
                return Err(Error::Datastore {
                    url: format!("file://{}", abs.display()),
                    message: "no such directory (nothing has run against this datastore yet)"
                        .into(),
                });
            }
            std::fs::create_dir_all(&abs).map_err(|e| Error::Datastore {
                url: format!("file://{}", abs.display()),
                message: format!("cannot create the directory: {e}"),
            })?;
        }
        Err(e) => {
            return Err(Error::Datastore {
                url: format!("file://{}", abs.display()),
                message: format!("cannot access: {e}"),
            })
        }
    }
    let abs = std::fs::canonicalize(&abs)
        .map_err(|e| Error::io(format!("resolving {}", abs.display()), e))?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(&abs)
        .map_err(|e| Error::Datastore {
            url: format!("file://{}", abs.display()),
            message: e.to_string(),
        })?
        // Commits survive a process crash either way (writes are atomic renames and links);
        // FLOWLIB_FSYNC=1 also makes them survive a power loss, at the cost of an fsync per file.
        .with_fsync(fsync_requested());
    let display = format!("file://{}", abs.display());
    Ok((
        Backend::Local(abs),
        Arc::new(store),
        String::new(),
        Exec::Inline,
        display,
    ))
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `FLOWLIB_FSYNC` asks for durable local writes.
fn fsync_requested() -> bool {
    std::env::var("FLOWLIB_FSYNC")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// Named in-memory stores shared within the process, so `memory://x` opened twice is one store.
fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let mut map = STORES.get_or_init(Default::default).lock().unwrap();
    map.entry(name.to_string())
        .or_insert_with(|| Arc::new(object_store::memory::InMemory::new()))
        .clone()
}

/// A tokio runtime for remote stores.
#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
pub(crate) fn remote_runtime() -> Result<Exec> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("flowlib-io")
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the I/O runtime", e))?;
    Ok(Exec::Tokio(rt))
}

/// Whether `p` looks like a local datastore directory.
pub fn is_datastore_dir(p: &FsPath) -> bool {
    p.join(MARKER).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

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
