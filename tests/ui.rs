//! Compile-time diagnostics of `#[flow]` and `#[derive(FlowState)]`.
//!
//! `tests/ui/pass/*.rs` must compile; each `tests/ui/fail/*.rs` breaks one rule and its
//! `.stderr` holds the expected diagnostics. Regenerate them with
//! `TRYBUILD=overwrite cargo test --test ui`, then review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
