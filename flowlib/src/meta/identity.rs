//! Code identity: the digest of the running executable (cached per file so hashing costs
//! once per build, not per run) and the git commit of the working directory.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::meta::CodeIdentity;
use crate::store::Digest;

/// The identity of the code now running.
pub(crate) fn current() -> CodeIdentity {
    let exe = std::env::current_exe().ok();
    CodeIdentity {
        exe: exe
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        exe_digest: exe.as_deref().and_then(exe_digest),
        git_commit: std::env::current_dir().ok().and_then(|d| git_commit(&d)),
        flowlib: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// SHA-256 of the executable, cached by (device, inode, size, mtime).
pub(crate) fn exe_digest(path: &Path) -> Option<Digest> {
    let meta = std::fs::metadata(path).ok()?;
    let key = format!(
        "{}-{}-{}-{}.{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec()
    );
    let cache = crate::store::cache_dir().map(|d| d.join("exe-digests").join(key));
    if let Some(c) = &cache {
        if let Ok(s) = std::fs::read_to_string(c) {
            if let Ok(d) = s.trim().parse() {
                return Some(d);
            }
        }
    }
    let d = crate::store::hash_file(path).ok()?.digest;
    if let Some(c) = &cache {
        // Best effort: write then rename so a concurrent reader never sees half a digest.
        if let Some(dir) = c.parent() {
            if std::fs::create_dir_all(dir).is_ok() {
                let tmp = dir.join(format!(".tmp-{}", std::process::id()));
                if std::fs::write(&tmp, d.to_string()).is_ok() {
                    let _ = std::fs::rename(&tmp, c);
                }
            }
        }
    }
    Some(d)
}

/// The commit `HEAD` points at in the repository containing `dir`, read from `.git`
/// directly (no `git` process).
pub(crate) fn git_commit(dir: &Path) -> Option<String> {
    let mut cur = Some(dir);
    while let Some(d) = cur {
        let dotgit = d.join(".git");
        if dotgit.is_dir() {
            return read_head(&dotgit);
        }
        if dotgit.is_file() {
            // A worktree: `.git` holds `gitdir: <path>`.
            let s = std::fs::read_to_string(&dotgit).ok()?;
            let gitdir = s.strip_prefix("gitdir:")?.trim();
            let gitdir = if Path::new(gitdir).is_absolute() {
                PathBuf::from(gitdir)
            } else {
                d.join(gitdir)
            };
            return read_head(&gitdir);
        }
        cur = d.parent();
    }
    None
}

fn read_head(gitdir: &Path) -> Option<String> {
    let head = std::fs::read_to_string(gitdir.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(r) = head.strip_prefix("ref:") else {
        return is_sha(head).then(|| head.to_string());
    };
    let r = r.trim();
    // Refs of a worktree may live in the common dir.
    let common = std::fs::read_to_string(gitdir.join("commondir"))
        .ok()
        .map(|c| gitdir.join(c.trim()))
        .unwrap_or_else(|| gitdir.to_path_buf());
    for base in [gitdir, common.as_path()] {
        if let Ok(s) = std::fs::read_to_string(base.join(r)) {
            let s = s.trim();
            if is_sha(s) {
                return Some(s.to_string());
            }
        }
        if let Ok(packed) = std::fs::read_to_string(base.join("packed-refs")) {
            for line in packed.lines() {
                if let Some((sha, name)) = line.split_once(' ') {
                    if name == r && is_sha(sha) {
                        return Some(sha.to_string());
                    }
                }
            }
        }
    }
    None
}

fn is_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_git_head_through_refs_and_packed_refs() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path().join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        let sha = "0123456789abcdef0123456789abcdef01234567";
        std::fs::write(git.join("refs/heads/main"), format!("{sha}\n")).unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(git_commit(&sub).as_deref(), Some(sha));
        std::fs::remove_file(git.join("refs/heads/main")).unwrap();
        std::fs::write(
            git.join("packed-refs"),
            format!("# pack-refs\n{sha} refs/heads/main\n"),
        )
        .unwrap();
        assert_eq!(git_commit(dir.path()).as_deref(), Some(sha));
    }

    #[test]
    fn exe_digest_is_stable_and_cached() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bin");
        std::fs::write(&f, b"not really an executable").unwrap();
        let a = exe_digest(&f).unwrap();
        assert_eq!(a, Digest::of(b"not really an executable"));
        assert_eq!(exe_digest(&f).unwrap(), a);
    }
}
