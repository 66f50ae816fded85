//! [`Lazy<T>`]: an artifact field that a task loads only when the step dereferences it.

use std::any::Any;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Result, Site};
use crate::store::cas::{self, What};
use crate::store::codec::{Tag, ViaSerde};
use crate::store::{BlobRef, Datastore, Digest};

/// An artifact field loaded only when a step dereferences it, and shared by the tasks of
/// one process that do.
///
/// A `Lazy<T>` field is stored exactly as a `T` field would be (the same bytes, the same
/// digest; a field may change between `T` and `Lazy<T>` and still read its old blobs).
/// What changes is the task side:
///
/// - a task whose step never dereferences it reads nothing, and stores nothing for it: the
///   field passes on by reference to the same blob;
/// - the tasks of one process that do dereference it decode it once and share the value
///   (the last few loaded values are kept per process), so a foreach of 1,000 tasks over
///   a shared 1 GiB dataset decodes it once per process, not 1,000 times;
/// - a step that changes it (`set`, `get_mut`) stores the new value as usual.
///
/// Dereferencing a value that cannot be read (missing or corrupt blob) panics with the
/// artifact's name and digest, which fails the task like any error of the step; use
/// [`Lazy::get`] to handle that error yourself.
///
/// ```
/// use flowlib::prelude::*;
/// use flowlib::Lazy;
///
/// #[derive(FlowState, Default, Serialize, Deserialize)]
/// struct Score {
///     dataset: Lazy<Vec<f64>>,
///     shards: Vec<usize>,
///     partial: f64,
///     total: f64,
/// }
///
/// #[flow]
/// impl Score {
///     #[step(start, next = score, foreach = shards)]
///     fn start(&mut self) -> Result<()> {
///         self.dataset.set((0..1000).map(f64::from).collect());
///         self.shards = (0..4).collect();
///         Ok(())
///     }
///
///     #[step(next = sum)]
///     fn score(&mut self, shard: &usize) -> Result<()> {
///         // Loaded here, once per process, shared with the other shards' tasks.
///         let rows = &self.dataset[shard * 250..(shard + 1) * 250];
///         self.partial = rows.iter().sum();
///         Ok(())
///     }
///
///     #[step(join, next = end)]
///     fn sum(&mut self, inputs: Inputs<Self>) -> Result<()> {
///         self.total = inputs.iter().map(|i| i.partial).sum();
///         Ok(())
///     }
///
///     #[step(end)]
///     fn end(&mut self) -> Result<()> {
///         assert_eq!(self.total, 499_500.0);
///         Ok(())
///     }
/// }
/// # let dir = tempfile::tempdir().unwrap();
/// # let ds = flowlib::Datastore::open(dir.path().to_str().unwrap(), flowlib::OpenMode::Create).unwrap();
/// # let s = flowlib::run::<Score>(&ds, &flowlib::RunOptions::default()).unwrap();
/// # assert_eq!(s.status, flowlib::RunStatus::Succeeded);
/// ```
pub struct Lazy<T> {
    state: State<T>,
}

enum State<T> {
    /// Set by the step (or decoded by a reader that is not a task).
    Value(Arc<T>),
    /// A task's input: the blob, and its value once loaded.
    Stored {
        blob: BlobRef,
        source: LazySource,
        loaded: OnceLock<Arc<T>>,
    },
}

/// Where a task's `Lazy` input is read from.
#[derive(Clone)]
#[doc(hidden)]
pub struct LazySource {
    pub(crate) ds: Datastore,
    pub(crate) cache: Arc<LazyCache>,
    pub(crate) artifact: &'static str,
    pub(crate) site: Site,
    /// The blob's bytes, when the manifest it came from holds them inline.
    pub(crate) inline: Option<Bytes>,
}

/// A blob a `Lazy` field stands for, with its bytes when they are held inline.
#[doc(hidden)]
pub type StoredBlob = (BlobRef, Option<Bytes>);

/// Values loaded through `Lazy` fields in this process, by blob digest: the most recent
/// few are kept, so tasks that read the same value share one decoded copy.
#[derive(Default)]
pub(crate) struct LazyCache {
    entries: Mutex<Vec<(Digest, Arc<dyn Any + Send + Sync>)>>,
    /// One lock per value being loaded: tasks that want it at once wait for one load.
    loading: Mutex<Vec<(Digest, Arc<Mutex<()>>)>>,
}

impl LazyCache {
    /// How many loaded values stay shared.
    const KEEP: usize = 8;

    fn get<T: Send + Sync + 'static>(&self, d: &Digest) -> Option<Arc<T>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .find(|(k, _)| k == d)
            .and_then(|(_, v)| v.clone().downcast::<T>().ok())
    }

    /// The lock of loading `d`.
    fn gate(&self, d: &Digest) -> Arc<Mutex<()>> {
        let mut loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        loading.retain(|(_, g)| Arc::strong_count(g) > 1);
        if let Some((_, g)) = loading.iter().find(|(k, _)| k == d) {
            return g.clone();
        }
        let g = Arc::new(Mutex::new(()));
        loading.push((*d, g.clone()));
        g
    }

    fn put<T: Send + Sync + 'static>(&self, d: Digest, v: Arc<T>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|(k, _)| *k != d);
        if entries.len() >= Self::KEEP {
            entries.remove(0);
        }
        entries.push((d, v));
    }
}

impl fmt::Debug for LazyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.entries.lock().map(|e| e.len()).unwrap_or(0);
        f.debug_struct("LazyCache").field("values", &n).finish()
    }
}

impl fmt::Debug for LazySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazySource")
            .field("artifact", &self.artifact)
            .finish_non_exhaustive()
    }
}

impl<T> Lazy<T> {
    /// A value set by the step.
    pub fn new(value: T) -> Self {
        Lazy {
            state: State::Value(Arc::new(value)),
        }
    }

    /// Replace the value (it is stored when the step ends).
    pub fn set(&mut self, value: T) {
        self.state = State::Value(Arc::new(value));
    }

    /// Whether the value is in memory (set by the step, or already loaded).
    pub fn is_loaded(&self) -> bool {
        match &self.state {
            State::Value(_) => true,
            State::Stored { loaded, .. } => loaded.get().is_some(),
        }
    }

    /// The blob an untouched task input stands for (it is passed on by reference), with
    /// its bytes when they are held inline.
    pub(crate) fn stored_blob(&self) -> Option<StoredBlob> {
        match &self.state {
            State::Stored { blob, source, .. } => Some((*blob, source.inline.clone())),
            State::Value(_) => None,
        }
    }

    #[doc(hidden)]
    pub fn __stored(blob: BlobRef, source: LazySource) -> Self {
        Lazy {
            state: State::Stored {
                blob,
                source,
                loaded: OnceLock::new(),
            },
        }
    }
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Lazy<T> {
    /// The value, loading it on first use (shared with the other tasks of this process
    /// that load the same blob).
    pub fn get(&self) -> Result<&T> {
        match &self.state {
            State::Value(v) => Ok(v),
            State::Stored {
                blob,
                source,
                loaded,
            } => {
                if let Some(v) = loaded.get() {
                    return Ok(v);
                }
                let gate = source.cache.gate(&blob.digest);
                let _loading = gate.lock().unwrap_or_else(|e| e.into_inner());
                let value = match source.cache.get::<T>(&blob.digest) {
                    Some(v) => v,
                    None => {
                        let what = What::new(source.artifact, source.site.clone());
                        let mut out: Option<T> = None;
                        let inline = source.inline.as_ref();
                        cas::load_decoded(&source.ds, *blob, inline, &what, &mut |r| {
                            out = Some((&Tag::<T>::NEW).decode_field(r)?);
                            Ok(())
                        })?;
                        let v = Arc::new(out.expect("decoded"));
                        source.cache.put(blob.digest, v.clone());
                        v
                    }
                };
                let _ = loaded.set(value);
                Ok(loaded.get().expect("just set"))
            }
        }
    }

    /// The value, to change in place (loaded first if needed; copied if another task
    /// shares it). The changed value is stored when the step ends.
    pub fn get_mut(&mut self) -> Result<&mut T>
    where
        T: Clone,
    {
        if let State::Stored { .. } = &self.state {
            let v: Arc<T> = match &self.state {
                State::Stored { loaded, .. } => match loaded.get() {
                    Some(v) => v.clone(),
                    None => {
                        self.get()?;
                        match &self.state {
                            State::Stored { loaded, .. } => loaded.get().expect("loaded").clone(),
                            State::Value(v) => v.clone(),
                        }
                    }
                },
                State::Value(v) => v.clone(),
            };
            self.state = State::Value(v);
        }
        match &mut self.state {
            State::Value(v) => Ok(Arc::make_mut(v)),
            State::Stored { .. } => unreachable!("converted above"),
        }
    }
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Deref for Lazy<T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self.get() {
            Ok(v) => v,
            Err(e) => panic!("{}", crate::error::chain(&e)),
        }
    }
}

impl<T: Default> Default for Lazy<T> {
    fn default() -> Self {
        Lazy::new(T::default())
    }
}

impl<T> Clone for Lazy<T> {
    fn clone(&self) -> Self {
        Lazy {
            state: match &self.state {
                State::Value(v) => State::Value(v.clone()),
                State::Stored {
                    blob,
                    source,
                    loaded,
                } => State::Stored {
                    blob: *blob,
                    source: source.clone(),
                    loaded: loaded.clone(),
                },
            },
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Lazy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Value(v) => f.debug_tuple("Lazy").field(v).finish(),
            State::Stored { blob, loaded, .. } => match loaded.get() {
                Some(v) => f.debug_tuple("Lazy").field(v).finish(),
                None => write!(f, "Lazy(<not loaded: {}>)", blob.digest),
            },
        }
    }
}

/// Stored as the `T` it holds (loaded first when it is a task input nobody read).
impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Serialize for Lazy<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.get()
            .map_err(|e| serde::ser::Error::custom(crate::error::chain(&e)))?
            .serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lazy<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        T::deserialize(d).map(Lazy::new)
    }
}

/// Generated code: install a task's input into a `Lazy` field without reading it...
#[doc(hidden)]
pub trait LazyField<F> {
    fn lazy_install(&self, field: &mut F, blob: BlobRef, source: &LazySource) -> bool;
    fn lazy_blob(&self, field: &F) -> Option<StoredBlob>;
}

impl<T> LazyField<Lazy<T>> for Tag<Lazy<T>> {
    fn lazy_install(&self, field: &mut Lazy<T>, blob: BlobRef, source: &LazySource) -> bool {
        *field = Lazy::__stored(blob, source.clone());
        true
    }

    fn lazy_blob(&self, field: &Lazy<T>) -> Option<StoredBlob> {
        field.stored_blob()
    }
}

/// ...every other field is read as usual.
#[doc(hidden)]
pub trait NotLazy<F> {
    fn lazy_install(&self, field: &mut F, blob: BlobRef, source: &LazySource) -> bool;
    fn lazy_blob(&self, field: &F) -> Option<StoredBlob>;
}

impl<F> NotLazy<F> for &Tag<F> {
    fn lazy_install(&self, _: &mut F, _: BlobRef, _: &LazySource) -> bool {
        false
    }

    fn lazy_blob(&self, _: &F) -> Option<StoredBlob> {
        None
    }
}
