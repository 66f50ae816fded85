//! The datastore's I/O: every object_store call goes through here, so retries of
//! transient failures and the wrapping of errors (operation, path, datastore) happen in
//! one place.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    GetResult, MultipartUpload, ObjectMeta, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Backend, Datastore};
use crate::error::{Error, Result};
use crate::store::backend::Spawned;

/// One listed object.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    /// Path relative to the datastore root.
    pub(crate) rel: String,
    pub(crate) size: u64,
    pub(crate) last_modified: chrono::DateTime<chrono::Utc>,
}

impl Datastore {
    /// Run a storage future to completion from synchronous code.
    pub(crate) fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        self.inner.exec.block_on(fut)
    }

    /// Start a storage future without waiting for it (remote stores run several at once;
    /// local and in-memory ones finish it on the spot).
    pub(crate) fn spawn<F>(&self, fut: F) -> Spawned<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.exec.spawn(fut)
    }

    /// Object path for a path relative to the datastore root.
    pub(crate) fn path(&self, rel: &str) -> Path {
        let prefix = &self.inner.prefix;
        let full = if prefix.is_empty() {
            rel.to_string()
        } else if rel.is_empty() {
            prefix.clone()
        } else {
            format!("{prefix}/{rel}")
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
    fn retry<T, Op, Fut>(&self, mut op: Op) -> object_store::Result<T>
    where
        Op: FnMut() -> Fut,
        Fut: Future<Output = object_store::Result<T>> + Send,
        T: Send,
    {
        let remote = self.inner.exec.is_remote();
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

    /// [`retry`](Self::retry) an operation on `path`: `None` if the object does not exist,
    /// any other failure as an [`Error::Store`].
    fn retry_found<T, Op, Fut>(&self, op: &'static str, path: &Path, f: Op) -> Result<Option<T>>
    where
        Op: FnMut() -> Fut,
        Fut: Future<Output = object_store::Result<T>> + Send,
        T: Send,
    {
        match self.retry(f) {
            Ok(v) => Ok(Some(v)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(op, path, self.url(), e)),
        }
    }

    /// An object's metadata; `None` if it does not exist.
    pub(crate) fn head(&self, rel: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path(rel);
        self.retry_found("head", &path, || self.inner.store.head(&path))
    }

    /// Start reading an object (its metadata, and a file or a stream to read the body
    /// from); `None` if it does not exist. Failures while reading the body are the caller's.
    pub(crate) fn get(&self, rel: &str) -> Result<Option<GetResult>> {
        let path = self.path(rel);
        self.retry_found("get", &path, || self.inner.store.get(&path))
    }

    /// Stream an object from byte `offset` on (to resume a read cut mid-body); `None` if it
    /// does not exist.
    pub(crate) fn get_from(&self, rel: &str, offset: u64) -> Result<Option<GetResult>> {
        let path = self.path(rel);
        let opts = || object_store::GetOptions {
            range: Some(object_store::GetRange::Offset(offset)),
            ..Default::default()
        };
        self.retry_found("get", &path, || self.inner.store.get_opts(&path, opts()))
    }

    /// Read an object whole; `None` if it does not exist.
    pub(crate) fn get_bytes(&self, rel: &str) -> Result<Option<Bytes>> {
        let path = self.path(rel);
        let store = &self.inner.store;
        // The body is read inside the retry: a response cut mid-body is retried too.
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
        if let (Backend::Local(root), PutMode::Create) = (&self.inner.backend, &mode) {
            return self.create_local(root, rel, &bytes);
        }
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

    /// A create-only write on a local directory, in two directory operations: the bytes go
    /// to a staging file beside the object, which is renamed into place only if nothing is
    /// there (`renameat2(RENAME_NOREPLACE)`; where the filesystem lacks it, a hard link
    /// then an unlink, as `object_store`'s local store does). Readers see the whole object
    /// or none. The staging name ends in `#<digits>`, which listings skip (the convention
    /// of `object_store`'s local store, whose staged files `gc` collects when a writer was
    /// killed). A local create is the commonest write (every blob and commit record), and
    /// this path costs a third fewer file-system operations than a link-and-unlink.
    fn create_local(&self, root: &std::path::Path, rel: &str, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dest = root.join(rel);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = dest.with_file_name(format!("{name}#{}{seq:010}", std::process::id()));
        let failed = |what: &str, e: std::io::Error| {
            Error::store(
                "put",
                self.path(rel),
                self.url(),
                object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: format!("{what} {}: {e}", tmp.display()).into(),
                },
            )
        };
        let open = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
        };
        let mut f = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = tmp.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| failed("creating the folder of", e))?;
                }
                open()
            }
            other => other,
        }
        .map_err(|e| failed("creating", e))?;
        if let Err(e) = f.write_all(bytes) {
            drop(f);
            let _ = std::fs::remove_file(&tmp);
            return Err(failed("writing", e));
        }
        drop(f);
        match rename_noreplace(&tmp, &dest) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    return Err(Error::store(
                        "put",
                        self.path(rel),
                        self.url(),
                        object_store::Error::AlreadyExists {
                            path: dest.display().to_string(),
                            source: Box::new(e),
                        },
                    ));
                }
                Err(failed("moving into place", e))
            }
        }
    }

    /// Start a multipart upload to `rel`; the object appears when it completes.
    pub(crate) fn put_multipart(&self, rel: &str) -> Result<Box<dyn MultipartUpload>> {
        let path = self.path(rel);
        self.retry(|| self.inner.store.put_multipart(&path))
            .map_err(|e| Error::store("put_multipart", &path, self.url(), e))
    }

    /// Move an object, replacing any object at `to_rel`. Not retried: a repeated rename
    /// would find its source gone.
    pub(crate) fn rename(&self, from_rel: &str, to_rel: &str) -> Result<()> {
        let (from, to) = (self.path(from_rel), self.path(to_rel));
        self.block_on(self.inner.store.rename(&from, &to))
            .map_err(|e| Error::store("rename", &from, self.url(), e))
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
        let bytes = to_json(value);
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
        self.create(rel, to_json(value))
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

    /// Whether nothing at all is stored under the datastore's prefix.
    pub(super) fn is_empty_prefix(&self) -> Result<bool> {
        let prefix = self.path("");
        let prefix = (!prefix.as_ref().is_empty()).then_some(&prefix);
        // Retried like every other request: a reset or a cut listing while a datastore is
        // opened must not fail the run (the fault-proxy test injects exactly that).
        let store = self.inner.store.clone();
        let listed = self
            .retry(|| {
                let (store, prefix) = (store.clone(), prefix.cloned());
                async move { store.list_with_delimiter(prefix.as_ref()).await }
            })
            .map_err(|e| Error::store("list", self.inner.prefix.as_str(), self.url(), e))?;
        Ok(listed.objects.is_empty() && listed.common_prefixes.is_empty())
    }

    /// Rewrite the small object `rel` in place, without allocating space: the bytes go over
    /// the existing file's, padded with spaces to its old length (JSON readers skip them).
    /// The write a full disk still allows, since the file's blocks are already there.
    /// Returns false for stores that are not a local directory (they have no full disk to
    /// work around; use `put_json`).
    pub(crate) fn rewrite_in_place(&self, rel: &str, bytes: &[u8]) -> Result<bool> {
        use std::io::Write;
        let Backend::Local(root) = &self.inner.backend else {
            return Ok(false);
        };
        let path = root.join(rel);
        let failed = |e| Error::io(format!("rewriting {} in place", path.display()), e);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(failed)?;
        let old = f.metadata().map_err(failed)?.len() as usize;
        let mut all = bytes.to_vec();
        all.resize(all.len().max(old), b' ');
        f.write_all(&all).map_err(failed)?;
        Ok(true)
    }

    /// Refresh the modification time of a blob being reused, so `gc`'s grace period
    /// protects it until the run that reuses it has committed.
    pub(crate) fn touch(&self, rel: &str, bytes: &Bytes) -> Result<()> {
        match &self.inner.backend {
            Backend::Local(root) => {
                let path = root.join(rel);
                let touching = |e| Error::io(format!("touching {}", path.display()), e);
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(touching)?;
                f.set_modified(std::time::SystemTime::now())
                    .map_err(touching)
            }
            _ => self.put_bytes(rel, bytes.clone(), PutMode::Overwrite),
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(value).expect("metadata serializes to JSON"))
}

/// Rename `from` to `to` unless `to` exists (then `AlreadyExists`).
fn rename_noreplace(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &std::path::Path| std::ffi::CString::new(p.as_os_str().as_bytes());
        let (f, t) = (c(from)?, c(to)?);
        // SAFETY: two valid NUL-terminated paths; renameat2 reads them and nothing else.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            // The filesystem (or kernel) cannot: link and unlink instead.
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => {}
            _ => return Err(e),
        }
    }
    std::fs::hard_link(from, to)?;
    let _ = std::fs::remove_file(from);
    Ok(())
}

/// Failures worth another try: transport errors and unparsable (cut) responses.
fn is_transient(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
    )
}
