//! Shared support for flowlib's examples, integration tests and benchmarks.
