//! flowlib's integration tests: one binary, one module per area, sharing the helpers of
//! `flowlib-testkit` (`tests/support/`). Flows run in process, or as the real example
//! binaries (`flowlib-examples`) and the crash fixture (`fixtures/crashflow.rs`) in
//! temporary directories. A module is an area to filter by:
//! `cargo test -p flowlib-tests --test integration crash::`.

mod argo;
mod cache;
mod checkpoint;
mod cli;
mod cli_resume;
mod cloud;
mod crash;
mod damaged;
mod executor;
mod inline;
mod integrity;
mod join_views;
#[cfg(feature = "otel")]
mod otel;
mod remote;
mod report;
mod resume;
mod store_format;
mod telemetry;
mod track;
