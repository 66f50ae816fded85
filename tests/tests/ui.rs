//! Compile-time diagnostics of `#[flow]` and `#[derive(FlowState)]`.
//!
//! `tests/ui/pass/*.rs` must compile; each `tests/ui/fail/*.rs` breaks one rule and its
//! `.stderr` holds the expected diagnostics (paths relative to this crate, `tests/`).
//!
//! The `.stderr` files hold rustc's exact wording, which changes between releases, so they
//! are pinned to the rustc version in `tests/ui/TOOLCHAIN` (CI's stable): under any other
//! rustc this test says so and skips, unless `FLOWLIB_UI_ANY_TOOLCHAIN=1`. To move to a new
//! toolchain, regenerate with it (from the workspace root) and review the diff:
//!
//! ```sh
//! rustc --version | awk '{print $2}' > tests/tests/ui/TOOLCHAIN
//! TRYBUILD=overwrite cargo test -p flowlib-tests --test ui
//! ```

use std::io::Write;
use std::process::Command;

#[test]
fn ui() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let pinned = std::fs::read_to_string(format!("{dir}/tests/ui/TOOLCHAIN"))
        .expect("tests/ui/TOOLCHAIN names the rustc version the .stderr files were made with");
    let pinned = pinned.trim();
    // the rustc that trybuild's cargo will use
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("running `{rustc} --version`: {e}"));
    let version = String::from_utf8_lossy(&out.stdout);
    let current = version.split_whitespace().nth(1).unwrap_or("unknown");
    let any = std::env::var("FLOWLIB_UI_ANY_TOOLCHAIN").is_ok_and(|v| v == "1");
    if current != pinned && !any {
        // straight to stderr: libtest would swallow an `eprintln!` of a passing test
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED ui: the .stderr files are pinned to rustc {pinned} (tests/tests/ui/TOOLCHAIN), \
             this is rustc {current}; set FLOWLIB_UI_ANY_TOOLCHAIN=1 to run them anyway"
        );
        return;
    }
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
