//! Opening a backend: a datastore URL becomes an object store, the key prefix inside it,
//! and the executor its futures run on. Local and in-memory stores are here; the remote
//! ones are in [`cloud`](crate::store::cloud).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use object_store::ObjectStore;

use crate::error::{Error, Result};
use crate::store::{Backend, OpenMode};

/// Where a backend's futures run.
pub(crate) enum Exec {
    /// On the calling thread: local and in-memory I/O blocks anyway, so this avoids a
    /// thread hop per operation.
    Inline,
    /// On a small runtime owned by the datastore (remote stores).
    #[cfg_attr(
        not(any(feature = "aws", feature = "gcp", feature = "azure")),
        allow(dead_code)
    )]
    Tokio(tokio::runtime::Runtime),
}

/// A future handed to [`Exec::spawn`]: already finished, or running on the I/O runtime.
pub(crate) enum Spawned<T> {
    Done(T),
    Running(tokio::task::JoinHandle<T>),
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

    /// Start a future so several can be in flight (remote stores); inline stores simply
    /// run it to completion.
    pub(crate) fn spawn<F>(&self, fut: F) -> Spawned<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Exec::Inline => Spawned::Done(self.block_on(fut)),
            Exec::Tokio(rt) => Spawned::Running(rt.spawn(fut)),
        }
    }

    /// Whether operations go over the network (and so may fail transiently).
    pub(crate) fn is_remote(&self) -> bool {
        matches!(self, Exec::Tokio(_))
    }
}

/// What presigns download URLs for a cloud store.
#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
pub(crate) type SignerRef = Arc<dyn object_store::signer::Signer>;
/// No cloud store is compiled in: nothing can presign.
#[cfg(not(any(feature = "aws", feature = "gcp", feature = "azure")))]
pub(crate) type SignerRef = std::convert::Infallible;

/// An opened backend.
pub(crate) struct Opened {
    pub(crate) backend: Backend,
    pub(crate) store: Arc<dyn ObjectStore>,
    /// Key prefix of the datastore inside the store (empty: its root).
    pub(crate) prefix: String,
    pub(crate) exec: Exec,
    /// The normalized URL shown to users.
    pub(crate) url: String,
    /// Presigns URLs for a download without credentials (cloud stores only).
    pub(crate) signer: Option<SignerRef>,
}

impl Opened {
    /// A store whose futures run inline, rooted at the store's root.
    fn inline(backend: Backend, store: Arc<dyn ObjectStore>, url: String) -> Opened {
        Opened {
            backend,
            store,
            prefix: String::new(),
            exec: Exec::Inline,
            url,
            signer: None,
        }
    }
}

/// Open the backend a datastore URL names (the URL is trimmed and not empty).
pub(crate) fn open_backend(
    url: &str,
    mode: OpenMode,
    options: &[(String, String)],
) -> Result<Opened> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("memory://") {
        let name = url["memory://".len()..].trim_matches('/').to_string();
        let store = memory_store(&name);
        return Ok(Opened::inline(
            Backend::Memory,
            store,
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
        // A plain path is a path (`plain%41dir` is a folder of that name); only a file://
        // URL is percent-decoded.
        None => open_local(url, mode),
        Some("file") => open_local(&percent_decode(&url["file://".len()..]), mode),
        Some("s3") | Some("s3a") => crate::store::cloud::open_s3(url, options),
        Some("gs") => crate::store::cloud::open_gcs(url, options),
        Some("az") | Some("azure") | Some("abfs") | Some("abfss") => crate::store::cloud::open_azure(url, options),
        Some(other) => Err(Error::invalid(format!(
            "unsupported datastore URL scheme `{other}://` in `{url}`; use a path, file://, s3://, gs://, az:// or memory://"
        ))),
    }
}

fn open_local(raw: &str, mode: OpenMode) -> Result<Opened> {
    let path = PathBuf::from(raw);
    let abs = if path.is_absolute() {
        path
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("reading the current directory", e))?
            .join(path)
    };
    let refuse = |message: String| Error::Datastore {
        url: file_url(&abs),
        message,
    };
    match std::fs::metadata(&abs) {
        Ok(m) if !m.is_dir() => return Err(refuse("exists but is not a directory".into())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if mode == OpenMode::Existing {
                return Err(refuse(
                    "no such directory (nothing has run against this datastore yet)".into(),
                ));
            }
            std::fs::create_dir_all(&abs)
                .map_err(|e| refuse(format!("cannot create the directory: {e}")))?;
        }
        Err(e) => return Err(refuse(format!("cannot access: {e}"))),
    }
    let abs = std::fs::canonicalize(&abs)
        .map_err(|e| Error::io(format!("resolving {}", abs.display()), e))?;
    let url = file_url(&abs);
    let store = object_store::local::LocalFileSystem::new_with_prefix(&abs)
        .map_err(|e| Error::Datastore {
            url: url.clone(),
            message: e.to_string(),
        })?
        // Commits survive a process crash either way (writes are atomic renames and links);
        // FLOWLIB_FSYNC=1 also makes them survive a power loss, at the cost of an fsync per file.
        .with_fsync(fsync_requested());
    Ok(Opened::inline(Backend::Local(abs), Arc::new(store), url))
}

/// The `file://` URL of a local path: `%` is escaped, so the URL opens the same folder again.
fn file_url(path: &std::path::Path) -> String {
    format!("file://{}", path.display().to_string().replace('%', "%25"))
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
            // Bytes, not `&s[..]`: an escape cut by a multi-byte character must not panic.
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (#8): a plain path is not percent-decoded, and the normalized URL of a
    /// folder with `%` in its name opens the same folder.
    #[test]
    fn a_plain_path_is_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain%41dir");
        let ds = crate::store::Datastore::open(plain.to_str().unwrap(), OpenMode::Create).unwrap();
        assert!(plain.join("datastore.json").is_file());
        assert!(!dir.path().join("plainAdir").exists());
        let again = crate::store::Datastore::open(ds.url(), OpenMode::Existing).unwrap();
        assert_eq!(again.url(), ds.url());
        let odd = dir.path().join("50%aé");
        crate::store::Datastore::open(odd.to_str().unwrap(), OpenMode::Create).unwrap();
        assert!(odd.join("datastore.json").is_file());
    }

    #[test]
    fn percent_decoding_keeps_invalid_escapes() {
        assert_eq!(percent_decode("/a%20b/c"), "/a b/c");
        assert_eq!(percent_decode("/a%zzb%2"), "/a%zzb%2");
        assert_eq!(percent_decode("/plain"), "/plain");
        assert_eq!(percent_decode("/%aé%C3%A9"), "/%aéé");
    }
}
