//! Identities: foreach index paths, task ids (`step` or `step/2.5`, parsed in one place),
//! run ids, and the host and user that ran something.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Indices of a task in its enclosing foreach splits, outermost first. Empty outside foreach.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IndexPath(pub Vec<u32>);

impl IndexPath {
    /// The empty path (tasks outside any foreach).
    pub fn root() -> Self {
        IndexPath(Vec::new())
    }

    /// This path extended by one more index.
    pub fn child(&self, i: u32) -> Self {
        let mut v = self.0.clone();
        v.push(i);
        IndexPath(v)
    }

    /// This path without its last index.
    pub fn parent(&self) -> Self {
        let mut v = self.0.clone();
        v.pop();
        IndexPath(v)
    }

    /// Directory name used in the datastore: `_` for the empty path, else `2.5`.
    pub fn dir_name(&self) -> String {
        if self.0.is_empty() {
            "_".to_string()
        } else {
            self.to_string()
        }
    }

    /// Parse `2.5`, `_` or the empty string.
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s == "_" {
            return Some(IndexPath::root());
        }
        s.split('.')
            .map(|p| p.parse::<u32>().ok())
            .collect::<Option<Vec<_>>>()
            .map(IndexPath)
    }
}

impl fmt::Display for IndexPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, x) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{x}")?;
        }
        Ok(())
    }
}

/// `step` or `step/2.5`.
pub(crate) fn task_id(step: &str, index: &IndexPath) -> String {
    if index.0.is_empty() {
        step.to_string()
    } else {
        format!("{step}/{index}")
    }
}

/// A new run id: time-sortable, with 48 random bits so that runs started anywhere at the
/// same millisecond do not collide (and `run.json` is created create-only to be sure).
pub(crate) fn new_run_id() -> String {
    crate::store::unique_name()
}

/// Check a run id supplied by a user: no path separators, no `..`, nothing odd.
pub(crate) fn validate_run_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && !id.contains("..")
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid run id `{}`: run ids use letters, digits, `-`, `_` and `.` only (no `/` or `..`)",
            id.escape_default()
        )))
    }
}

/// Split a task id, `step` or `step/2.5`, into its step name and index path.
pub(crate) fn parse_task_id(id: &str) -> Result<(&str, IndexPath)> {
    match id.split_once('/') {
        Some((s, i)) => Ok((
            s,
            IndexPath::parse(i)
                .ok_or_else(|| Error::invalid(format!("invalid task index `{i}` in `{id}`")))?,
        )),
        None => Ok((id, IndexPath::root())),
    }
}

/// Host name of this machine.
pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown".to_string()
    }
}

/// User name from the environment.
pub(crate) fn username() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_paths() {
        let p = IndexPath::root().child(2).child(5);
        assert_eq!(p.to_string(), "2.5");
        assert_eq!(p.dir_name(), "2.5");
        assert_eq!(IndexPath::root().dir_name(), "_");
        assert_eq!(IndexPath::parse("2.5"), Some(p.clone()));
        assert_eq!(IndexPath::parse("_"), Some(IndexPath::root()));
        assert_eq!(IndexPath::parse("x"), None);
        assert_eq!(p.parent().to_string(), "2");
        assert_eq!(task_id("fit", &p), "fit/2.5");
        assert_eq!(task_id("start", &IndexPath::root()), "start");
    }

    #[test]
    fn run_ids_sort_by_time_and_validate() {
        let a = new_run_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_run_id();
        assert!(a < b, "{a} {b}");
        assert_ne!(a, b);
        validate_run_id(&a).unwrap();
        for bad in ["", ".", "..", "a/b", "../x", "a..b", "a b", "x\0"] {
            assert!(validate_run_id(bad).is_err(), "{bad:?}");
        }
    }
}
