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
    DEFAULT_DATASTORE,
};
pub(crate) use digest::{hash_file, hash_reader, Hasher};
pub use digest::{BlobRef, Digest, ParseDigestError};

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
