//! Crash-test hook: `FLOWLIB_TEST_HOLD=<point>[@<task>]` makes the process announce
//! `FLOWLIB_HOLD <point> <task>` on stderr and stop at that point of the commit protocol,
//! so a test can SIGKILL it at an exact instant (between a blob write and its commit, in
//! the middle of a large upload, ...). Unset, it costs one atomic load. With
//! `FLOWLIB_TEST_RELEASE=<file>` too, the process goes on once `<file>` exists: the test
//! changes the world at that instant (fills the disk) and lets the run continue.

use std::io::Write;
use std::sync::OnceLock;

/// Environment variable naming the hold point.
pub(crate) const ENV: &str = "FLOWLIB_TEST_HOLD";

fn target() -> Option<&'static (String, Option<String>)> {
    static T: OnceLock<Option<(String, Option<String>)>> = OnceLock::new();
    T.get_or_init(|| {
        let v = std::env::var(ENV).ok()?;
        let v = v.trim();
        if v.is_empty() {
            return None;
        }
        Some(match v.split_once('@') {
            Some((p, t)) => (p.to_string(), Some(t.to_string())),
            None => (v.to_string(), None),
        })
    })
    .as_ref()
}

/// Stop here forever if the hold point matches.
pub(crate) fn hold(point: &str, task: &str) {
    let Some((p, t)) = target() else { return };
    if p != point || t.as_deref().is_some_and(|t| t != task) {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "FLOWLIB_HOLD {point} {task}");
    let _ = err.flush();
    drop(err);
    if let Some(release) = std::env::var_os("FLOWLIB_TEST_RELEASE") {
        let release = std::path::PathBuf::from(release);
        while !release.exists() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        return;
    }
    loop {
        std::thread::park();
    }
}
