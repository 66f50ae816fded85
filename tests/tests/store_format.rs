//! The store format: one object per task attempt (its commit record carries its manifest),
//! large values hashed before they are written, stores of format 1 still read, resumed,
//! verified and collected, and a newer format refused with a clear error.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use flowlib_testkit::{
    blob_path, commit_path, committed_manifest, count_files, fixture, flow_command,
    write_format1_store,
};
use serde_json::Value;

fn cmd(dir: &Path, args: &[&str]) -> Output {
    flow_command(&fixture("crashflow"), dir)
        .env("CRASH_LOG", dir.join("log"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = cmd(dir, args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn root(dir: &Path) -> PathBuf {
    dir.join(".flowlib")
}

fn open(dir: &Path) -> flowlib::Datastore {
    flowlib::Datastore::open(root(dir).to_str().unwrap(), flowlib::OpenMode::Existing).unwrap()
}

fn latest(dir: &Path) -> String {
    open(dir).latest_run("Crash").unwrap().unwrap()
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every commit record under the store.
fn commit_records(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.to_string_lossy().ends_with(".commit.json") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root.join("flows"), &mut out);
    out.sort();
    out
}

#[test]
fn a_task_attempt_is_one_object_that_carries_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["run", "-q", "--n", "5", "--big-mib", "1"]);
    let root = root(d);
    let run = latest(d);
    assert_eq!(json(&root.join("datastore.json"))["version"], 2);
    // start, 5 x work, gather, train, big, end: one commit record each, no manifest object.
    let records = commit_records(&root);
    assert_eq!(records.len(), 10, "{records:?}");
    assert_eq!(
        count_files(&root.join("manifests")),
        0,
        "no manifest objects"
    );
    for r in &records {
        let c = json(r);
        assert_eq!(c["version"], 2, "{}", r.display());
        let m = &c["manifest_json"];
        assert_eq!(m["run"], run.as_str(), "{}", r.display());
        // The pin is the digest of exactly the bytes the record carries.
        let raw = std::fs::read_to_string(r).unwrap();
        let start = raw.find("\"manifest_json\":").unwrap() + "\"manifest_json\":".len();
        let de = &mut serde_json::Deserializer::from_str(&raw[start..]);
        let bytes: &serde_json::value::RawValue = serde::Deserialize::deserialize(de).unwrap();
        let digest = flowlib::Digest::of(bytes.get().as_bytes());
        assert_eq!(
            c["manifest"]["digest"],
            digest.to_string(),
            "{}",
            r.display()
        );
    }
    // Every reader sees it: the client, dump, verify.
    let ds = open(d);
    let w = ds.successful_task("Crash", &run, "work/3").unwrap();
    assert!(w.manifest.unwrap().artifacts.contains_key("part"));
    assert!(ok(d, &["dump", "latest/work/3"]).contains("part"));
    ok(d, &["verify"]);
}

#[test]
fn a_large_value_already_stored_is_hashed_not_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["run", "-q", "--n", "2", "--big-mib", "12"]);
    let run = latest(d);
    let ds = open(d);
    let big = ds.successful_task("Crash", &run, "big").unwrap();
    let blob = big.manifest.unwrap().artifacts["big"];
    assert!(
        blob.size > 8 << 20,
        "above the in-memory limit: the large path"
    );
    let path = blob_path(&root(d), &blob.digest);
    let before = std::fs::metadata(&path).unwrap();
    // The same 12 MiB again, in another run: the file stays the very same (a write would
    // have renamed a new file over it).
    ok(d, &["run", "-q", "--n", "2", "--big-mib", "12"]);
    let again = ds
        .successful_task("Crash", &latest(d), "big")
        .unwrap()
        .manifest
        .unwrap()
        .artifacts["big"];
    assert_eq!(again, blob);
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(after.ino(), before.ino(), "not rewritten");
    assert_eq!(count_files(&root(d).join("tmp")), 0, "nothing staged");
    ok(d, &["verify"]);
}

#[test]
fn a_store_of_format_1_reads_resumes_verifies_and_collects_mixed_with_format_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["run", "-q", "--n", "4", "--big-mib", "1"]);
    let old = latest(d);
    let root = root(d);
    // As flowlib before one object per attempt wrote it.
    assert_eq!(write_format1_store(&root), 9);
    assert_eq!(json(&root.join("datastore.json"))["version"], 1);
    assert_eq!(count_files(&root.join("manifests")), 9);
    let dumped = ok(d, &["dump", "latest/work/2"]);
    assert!(dumped.contains("part"), "{dumped}");
    assert!(ok(d, &["runs"]).contains(&old));
    ok(d, &["verify"]);

    // A resume from `big` reuses the format 1 tasks and commits format 2 ones.
    let o = cmd(d, &["resume", "big", "--big-mib", "2"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("tasks reused"), "{stderr}");
    let new = latest(d);
    assert_ne!(new, old);
    assert_eq!(
        json(&root.join("datastore.json"))["version"],
        2,
        "a writer marks the store format 2"
    );
    let big = commit_path(&root, "Crash", &new, "big", 0);
    assert_eq!(json(&big)["version"], 2);
    assert_eq!(committed_manifest(&root, &big)["run"], new.as_str());
    let ds = open(d);
    let work = ds.successful_task("Crash", &new, "work/2").unwrap();
    assert_eq!(work.source.run, old, "reused from the format 1 run");
    assert!(work.reused && work.manifest.is_some());
    let end: String = ds.artifact("Crash", &new, "end", "summary").unwrap();
    assert!(end.contains("big=2097152"), "{end}");

    // verify and gc over the mixed store: gc keeps every format 1 manifest a run names.
    ok(d, &["verify"]);
    ok(d, &["gc", "--grace", "0s", "--force"]);
    assert_eq!(count_files(&root.join("manifests")), 9);
    ok(d, &["verify"]);
    assert!(ok(d, &["dump", &format!("{old}/work/2")]).contains("part"));
    assert!(ok(d, &["dump", &format!("{new}/big")]).contains("big"));
}

#[test]
fn a_newer_format_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["run", "-q", "--n", "2", "--big-mib", "1"]);
    let root = root(d);
    let run = latest(d);

    // A commit record of a newer format: reported by name, not misread.
    let rec = commit_path(&root, "Crash", &run, "work/1", 0);
    let mut c = json(&rec);
    c["version"] = 3.into();
    std::fs::write(&rec, serde_json::to_vec(&c).unwrap()).unwrap();
    let o = cmd(d, &["verify"]);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("commit record format 3 is newer than this flowlib reads (2)")
            && out.contains("1@0.commit.json"),
        "{out}"
    );

    // A datastore of a newer format: refused with one line.
    let marker = root.join("datastore.json");
    let mut m = json(&marker);
    m["version"] = 3.into();
    std::fs::write(&marker, serde_json::to_vec(&m).unwrap()).unwrap();
    let o = cmd(d, &["runs"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("datastore format version 3 is newer than this flowlib supports (2)"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
