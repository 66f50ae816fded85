//! The store layer: the datastore facade over any `object_store` backend (with its I/O:
//! retries and create-only writes), opening backends from URLs (local, memory, cloud),
//! the store layout, the content-addressed blob store, the caches and the artifact codec.
//! Nothing here knows about flows, runs or scheduling.

mod backend;
pub(crate) mod cache;
pub(crate) mod cas;
pub(crate) mod cloud;
pub(crate) mod codec;
pub(crate) mod datastore;
mod digest;
pub(crate) mod layout;

pub(crate) use cache::cache_dir;
pub use cache::{CacheConfig, DEFAULT_CACHE_MAX};
pub(crate) use datastore::KNOWN_TTL;
pub use datastore::{
    is_datastore_dir, Backend, Datastore, DatastoreBuilder, OpenMode, DATASTORE_ENV,
    DEFAULT_DATASTORE, INLINE_LIMIT_ENV, MAX_INLINE_LIMIT,
};
pub(crate) use digest::{hash_file, hash_reader, Hasher};
pub use digest::{BlobRef, Digest, ParseDigestError};

/// Store requests issued this many at a time where a caller has many independent ones
/// (a join's inputs, a run's commit records, cache probes): each is I/O (10–50 ms on a
/// cloud store), so they overlap rather than queue; on a local store they are cheap.
pub(crate) const IO_THREADS: usize = 16;

/// The pool that runs many store requests at once (see [`IO_THREADS`]); `None` when no
/// thread can be started, and callers then issue them one by one.
pub(crate) fn io_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(IO_THREADS)
            .thread_name(|i| format!("flowlib-io-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// `f` over every item, many at once on the [`io_pool`] (in order; the first error wins).
pub(crate) fn par_io<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> crate::error::Result<R> + Sync + Send,
) -> crate::error::Result<Vec<R>> {
    use rayon::prelude::*;
    match io_pool() {
        Some(pool) if items.len() > 1 => pool.install(|| items.par_iter().map(f).collect()),
        _ => items.iter().map(f).collect(),
    }
}

/// A name no other writer picks: time-sortable, with 48 random bits.
pub(crate) fn unique_name() -> String {
    use std::hash::{BuildHasher, Hasher as _};
    let now = chrono::Utc::now();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(now.timestamp_nanos_opt().unwrap_or_default() as u128);
    h.write_u32(std::process::id());
    let r = h.finish() & 0xffff_ffff_ffff;
    format!("{}-{r:012x}", now.format("%Y%m%dT%H%M%S%.3fZ")).replace('.', "")
}

/// Current time as RFC 3339 with milliseconds, UTC (the timestamps of every record).
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
