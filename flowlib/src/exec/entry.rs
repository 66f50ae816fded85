//! The entry of a task container (Kubernetes, AWS Batch): a POSIX `sh` script that picks
//! the task spec of its array index, gets the flow binary **by digest** and runs
//! `<binary> task-exec --spec <digest>`. The image needs only `sh`, `sha256sum` and, to
//! download, `curl` or `wget` (busybox has all three): no Python, no pip, no SDK. An image
//! that already holds the binary (`FLOWLIB_EXE`, e.g. a `scratch`-based image with a
//! static build and busybox) skips the download; `task-exec` still refuses a binary whose
//! digest is not the run's.
//!
//! Where the binary comes from, in order: `FLOWLIB_EXE` in the image; a cached copy in
//! `$TMPDIR` that hashes right; a presigned URL of the datastore's copy (S3, GCS, Azure:
//! no credentials needed for the download); the datastore's file on a shared volume.

#![cfg_attr(not(any(feature = "kubernetes", feature = "batch")), allow(dead_code))]

use std::time::Duration;

use crate::error::Result;
use crate::exec::package::Package;
use crate::store::{Datastore, Digest, DATASTORE_ENV};

/// The exit code of an entry that could not get the flow binary or its spec.
pub(crate) const NO_BINARY_EXIT: i32 = 97;

/// How long a presigned download URL of the binary stays valid (S3's maximum is 7 days;
/// a job may wait that long in a queue).
const URL_VALID: Duration = Duration::from_secs(7 * 24 * 3600);

/// A container's command and environment.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// `["/bin/sh", "-c", <script>]`.
    pub(crate) command: Vec<String>,
    /// Variables the script reads (no secrets: the datastore's credentials come from the
    /// engine's own identity, a service account or a job role, or a secret the user names).
    pub(crate) env: Vec<(String, String)>,
}

/// The entry of a job running `specs` (one per array index, the index in `index_var`).
/// `exe_in_image`: where the image holds the flow binary, if it does.
pub(crate) fn entry(
    ds: &Datastore,
    package: &Package,
    specs: &[Digest],
    index_var: &str,
    exe_in_image: Option<&str>,
) -> Result<Entry> {
    let mut env = vec![
        (DATASTORE_ENV.to_string(), ds.url().to_string()),
        (
            "FLOWLIB_SPECS".to_string(),
            specs.iter().map(|d| d.hex()).collect::<Vec<_>>().join(" "),
        ),
        ("FLOWLIB_EXE_DIGEST".to_string(), package.digest.hex()),
    ];
    if let Some(exe) = exe_in_image {
        env.push(("FLOWLIB_EXE".to_string(), exe.to_string()));
    }
    if let Some(url) = ds.signed_url(&package.key, URL_VALID)? {
        env.push(("FLOWLIB_EXE_URL".to_string(), url));
    } else if let Some(file) = package.store_file(ds) {
        env.push(("FLOWLIB_EXE_FILE".to_string(), file.display().to_string()));
    }
    Ok(Entry {
        command: vec!["/bin/sh".into(), "-c".into(), script(index_var)],
        env,
    })
}

/// [`entry`], with the list of specs stored in the datastore instead of the environment:
/// the container fetches it (a presigned URL, or the file on a shared volume) and checks its
/// digest. AWS Batch allows a job's container overrides 8192 characters in all, so an array
/// of more than a few dozen tasks cannot carry its spec digests in `FLOWLIB_SPECS`.
#[cfg_attr(not(any(feature = "batch", feature = "kubernetes")), allow(dead_code))]
pub(crate) fn entry_listed(
    ds: &Datastore,
    package: &Package,
    specs: &[Digest],
    index_var: &str,
    exe_in_image: Option<&str>,
) -> Result<Entry> {
    let mut list = String::with_capacity(specs.len() * 65);
    for d in specs {
        list.push_str(&d.hex());
        list.push('\n');
    }
    let digest = Digest::of(list.as_bytes());
    let rel = crate::store::layout::spec_list(&digest);
    ds.create(&rel, bytes::Bytes::from(list))?;
    let mut e = entry(ds, package, &[], index_var, exe_in_image)?;
    e.env
        .push(("FLOWLIB_SPECS_DIGEST".to_string(), digest.hex()));
    if let Some(url) = ds.signed_url(&rel, URL_VALID)? {
        e.env.push(("FLOWLIB_SPECS_URL".to_string(), url));
    } else if let crate::store::Backend::Local(root) = ds.backend() {
        e.env.push((
            "FLOWLIB_SPECS_FILE".to_string(),
            root.join(&rel).display().to_string(),
        ));
    }
    Ok(e)
}

fn script(index_var: &str) -> String {
    format!(
        r#"# flowlib task entry (generated; it holds no secrets)
set -u
i=${{{index_var}:-0}}
specs=${{FLOWLIB_SPECS:-}}
if [ -z "$specs" ] && [ -n "${{FLOWLIB_SPECS_DIGEST:-}}" ]; then
  list="${{TMPDIR:-/tmp}}/flowlib-specs-$FLOWLIB_SPECS_DIGEST"
  if ! echo "$FLOWLIB_SPECS_DIGEST  $list" | sha256sum -c >/dev/null 2>&1; then
    tmp="$list.$$"
    if [ -n "${{FLOWLIB_SPECS_URL:-}}" ]; then
      if command -v curl >/dev/null 2>&1; then
        curl -fsS --retry 5 -o "$tmp" "$FLOWLIB_SPECS_URL"
      else
        wget -q -O "$tmp" "$FLOWLIB_SPECS_URL"
      fi || {{ echo "flowlib: cannot download the task spec list sha256:$FLOWLIB_SPECS_DIGEST from the datastore (presigned URL)" >&2; rm -f "$tmp"; exit {code}; }}
    elif [ -n "${{FLOWLIB_SPECS_FILE:-}}" ] && [ -r "$FLOWLIB_SPECS_FILE" ]; then
      cp "$FLOWLIB_SPECS_FILE" "$tmp" || {{ rm -f "$tmp"; exit {code}; }}
    else
      echo "flowlib: the task spec list sha256:$FLOWLIB_SPECS_DIGEST is not reachable from here: use an object store datastore or mount the shared volume" >&2
      exit {code}
    fi
    if ! echo "$FLOWLIB_SPECS_DIGEST  $tmp" | sha256sum -c >/dev/null 2>&1; then
      echo "flowlib: the task spec list fetched does not hash to sha256:$FLOWLIB_SPECS_DIGEST" >&2; rm -f "$tmp"; exit {code}
    fi
    mv -f "$tmp" "$list" || exit {code}
  fi
  specs=$(cat "$list")
fi
set -- $specs
if [ "$i" -ge "$#" ]; then echo "flowlib: no task spec for array index $i ($# specs)" >&2; exit {code}; fi
shift "$i"
spec=$1
d=$FLOWLIB_EXE_DIGEST
exe=${{FLOWLIB_EXE:-}}
if [ -z "$exe" ] || [ ! -x "$exe" ]; then
  exe="${{TMPDIR:-/tmp}}/flowlib-exe-$d"
  # A cached copy was verified before it was moved into place (and `task-exec` checks its
  # own digest against the run's again), so it is not hashed a second time.
  if [ ! -x "$exe" ]; then
    tmp="$exe.$$"
    if [ -n "${{FLOWLIB_EXE_URL:-}}" ]; then
      if command -v curl >/dev/null 2>&1; then
        curl -fsS --retry 5 -o "$tmp" "$FLOWLIB_EXE_URL"
      else
        wget -q -O "$tmp" "$FLOWLIB_EXE_URL"
      fi || {{ echo "flowlib: cannot download the flow binary sha256:$d from the datastore (presigned URL)" >&2; rm -f "$tmp"; exit {code}; }}
    elif [ -n "${{FLOWLIB_EXE_FILE:-}}" ] && [ -r "$FLOWLIB_EXE_FILE" ]; then
      cp "$FLOWLIB_EXE_FILE" "$tmp" || {{ echo "flowlib: cannot copy the flow binary from $FLOWLIB_EXE_FILE" >&2; exit {code}; }}
    else
      echo "flowlib: the flow binary sha256:$d is not in the image (FLOWLIB_EXE) and the datastore ${{FLOWLIB_DATASTORE}} is not visible here: use an object store datastore or mount the shared volume" >&2
      exit {code}
    fi
    if ! echo "$d  $tmp" | sha256sum -c >/dev/null 2>&1; then
      echo "flowlib: the flow binary fetched from the datastore does not hash to sha256:$d" >&2; rm -f "$tmp"; exit {code}
    fi
    # Create-only (a hard link fails if the name exists): another task sharing this
    # TMPDIR may already run the copy it placed there, which must not be replaced under it.
    chmod +x "$tmp" || exit {code}
    ln "$tmp" "$exe" 2>/dev/null || [ -x "$exe" ] || {{ echo "flowlib: cannot place the flow binary at $exe" >&2; rm -f "$tmp"; exit {code}; }}
    rm -f "$tmp"
  fi
fi
exec "$exe" task-exec --spec "sha256:$spec"
"#,
        code = NO_BINARY_EXIT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script picks the spec of its index, refuses an index past the end, and runs a
    /// binary that hashes right (here `/bin/echo` standing in for the flow binary).
    #[test]
    fn the_entry_picks_its_spec_and_checks_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("exe");
        std::fs::write(&exe, b"#!/bin/sh\necho ran \"$@\"\n").unwrap();
        let digest = crate::store::Digest::of(&std::fs::read(&exe).unwrap());
        let run = |index: &str, file: &std::path::Path| {
            std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(script("IDX"))
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap())
                .env("TMPDIR", dir.path())
                .env("IDX", index)
                .env("FLOWLIB_DATASTORE", "file:///nowhere")
                .env("FLOWLIB_SPECS", "aa bb cc")
                .env("FLOWLIB_EXE_DIGEST", digest.hex())
                .env("FLOWLIB_EXE_FILE", file)
                .output()
                .unwrap()
        };
        let out = run("1", &exe);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "ran task-exec --spec sha256:bb"
        );
        let out = run("3", &exe);
        assert_eq!(out.status.code(), Some(NO_BINARY_EXIT));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no task spec for array index 3"));
        // A different binary under the right name is refused.
        let _ = std::fs::remove_file(dir.path().join(format!("flowlib-exe-{}", digest.hex())));
        let other = dir.path().join("other");
        std::fs::write(&other, b"#!/bin/sh\necho evil\n").unwrap();
        let out = run("0", &other);
        assert_eq!(out.status.code(), Some(NO_BINARY_EXIT));
        assert!(String::from_utf8_lossy(&out.stderr).contains("does not hash to"));
    }

    /// An array whose spec list is stored: the entry fetches the list (here from the shared
    /// volume), checks its digest and picks its index's line.
    #[test]
    fn the_entry_reads_a_stored_spec_list() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Datastore::open(
            dir.path().join("ds").to_str().unwrap(),
            crate::store::OpenMode::Create,
        )
        .unwrap();
        let exe = dir.path().join("exe");
        std::fs::write(&exe, b"#!/bin/sh\necho ran \"$@\"\n").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let digest = crate::store::Digest::of(&std::fs::read(&exe).unwrap());
        let pkg = Package {
            exe: exe.clone(),
            digest,
            key: "unused".into(),
        };
        let specs: Vec<Digest> = (0..30u8).map(|i| Digest::of(&[i])).collect();
        let e = entry_listed(&ds, &pkg, &specs, "IDX", Some(exe.to_str().unwrap())).unwrap();
        assert!(
            e.env.iter().any(|(k, _)| k == "FLOWLIB_SPECS_FILE"),
            "{:?}",
            e.env
        );
        let run = |index: &str| {
            let mut c = std::process::Command::new(&e.command[0]);
            c.args(&e.command[1..])
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap())
                .env("TMPDIR", dir.path())
                .env("IDX", index);
            for (k, v) in &e.env {
                c.env(k, v);
            }
            c.output().unwrap()
        };
        let out = run("17");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("ran task-exec --spec sha256:{}", specs[17].hex())
        );
        // A list that no longer hashes to its digest is refused.
        let cached = dir.path().join(format!(
            "flowlib-specs-{}",
            e.env
                .iter()
                .find(|(k, _)| k == "FLOWLIB_SPECS_DIGEST")
                .unwrap()
                .1
        ));
        let file = &e
            .env
            .iter()
            .find(|(k, _)| k == "FLOWLIB_SPECS_FILE")
            .unwrap()
            .1;
        std::fs::remove_file(&cached).unwrap();
        std::fs::write(file, "00\n").unwrap();
        let out = run("0");
        assert_eq!(out.status.code(), Some(NO_BINARY_EXIT));
        assert!(String::from_utf8_lossy(&out.stderr).contains("does not hash to"));
    }
}
