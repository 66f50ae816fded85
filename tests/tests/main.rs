//! flowlib's integration tests: one binary, one module per area, sharing the helpers of
//! `flowlib-testkit` (`tests/support/`). Flows run in process, or as the real example
//! binaries (`flowlib-examples`) and the crash fixture (`bins/crashflow.rs`) in temporary
//! directories. Filter by area as usual: `cargo test -p flowlib-tests --test integration crash::`.

mod cli;
mod cli_resume;
mod cloud;
mod crash;
mod executor;
mod integrity;
mod resume;

/// The crash fixture binary (`bins/crashflow.rs`), built by cargo before the tests run.
const CRASHFLOW: &str = env!("CARGO_BIN_EXE_crashflow");
