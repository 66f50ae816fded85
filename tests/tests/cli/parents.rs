//! A join's manifest records its foreach parents as one range (hardening #8, item 13), and
//! every reader still sees every parent: the client, `dump`, `verify` and `gc`. A manifest
//! in the older form, one task reference per parent, still reads the same.

use flowlib::{Datastore, TaskRef};
use flowlib_testkit::{
    commit_path, committed_manifest, manifest_path, write_format1_commit, Sandbox,
};
use serde_json::Value;

use super::{assert_ok, run_ok, stdout};

/// The parents `dump --format json` lists for task `task` of the latest run.
fn dumped_parents(sb: &Sandbox, task: &str) -> Vec<String> {
    let o = sb.run(
        "train",
        &["dump", &format!("latest/{task}"), "--format", "json"],
    );
    assert_ok(&o);
    let v: Value = serde_json::from_str(&stdout(&o)).expect("dump prints JSON");
    v["parents"]
        .as_array()
        .expect("a parents list")
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

/// `verify` passes and `gc --grace 0s --force` deletes nothing any parent needs.
fn verify_and_gc(sb: &Sandbox, ds: &Datastore, run: &str, want: &[String]) {
    assert_ok(&sb.run("train", &["verify"]));
    assert_ok(&sb.run("train", &["gc", "--grace", "0s", "--force"]));
    assert_ok(&sb.run("train", &["verify"]));
    for p in want {
        let a = ds.successful_task("Train", run, p).expect("a parent");
        assert!(
            a.manifest_ref.is_some() && a.manifest.is_some(),
            "gc kept the manifest of parent {p}"
        );
    }
}

#[test]
fn a_join_manifest_records_its_foreach_parents_as_a_range_that_every_reader_expands() {
    let sb = Sandbox::new();
    let run = run_ok(&sb, "train", &["run", "-q"]);
    let ds = sb.open();
    let pick = ds.successful_task("Train", &run, "pick").unwrap();
    let m = pick.manifest.as_ref().unwrap();
    let n = m.parents.len() - 1;
    assert!(n >= 2, "the example trains several models");
    let want: Vec<String> = std::iter::once("start".to_string())
        .chain((0..n).map(|i| format!("fit/{i}")))
        .collect();
    let got: Vec<String> = m.parents.iter().map(|p| p.task_id()).collect();
    assert_eq!(got, want, "the client sees every parent, in order");

    // On disk: one range, not one reference per item.
    let commit = commit_path(&sb.datastore(), "Train", &run, "pick", 0);
    let raw: Value = committed_manifest(&sb.datastore(), &commit);
    let parents = raw["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 2, "start, then the range: {parents:?}");
    assert_eq!(parents[1]["foreach"], format!("0..{n}"), "{parents:?}");

    assert_eq!(dumped_parents(&sb, "pick"), want, "dump lists every parent");
    let text = stdout(&sb.run("train", &["dump", "latest/pick"]));
    assert!(
        text.contains(&format!("parents: {}", want.join(", "))),
        "{text}"
    );
    verify_and_gc(&sb, &ds, &run, &want);
}

#[test]
fn a_manifest_in_the_old_form_with_one_reference_per_parent_still_reads() {
    let sb = Sandbox::new();
    let run = run_ok(&sb, "train", &["run", "-q"]);
    let ds = sb.open();
    let pick = ds.successful_task("Train", &run, "pick").unwrap();
    let m = pick.manifest.as_ref().unwrap();
    let refs: Vec<TaskRef> = m.parents.iter().collect();
    let want: Vec<String> = refs.iter().map(|p| p.task_id()).collect();

    // Rewrite the manifest as older flowlib wrote it, in a store of format 1 (the
    // manifest under `manifests/`, the commit record pinning it).
    let root = sb.datastore();
    let commit = commit_path(&root, "Train", &run, "pick", 0);
    let mut v = committed_manifest(&root, &commit);
    v["parents"] = serde_json::to_value(&refs).unwrap();
    assert_eq!(
        v["parents"][1]["index"],
        serde_json::json!([0]),
        "{}",
        v["parents"]
    );
    let digest = write_format1_commit(&root, &commit, Some(&v));
    let new_path = manifest_path(&root, &digest);
    let again = ds.successful_task("Train", &run, "pick").unwrap();
    assert_eq!(
        again.manifest_ref.unwrap().digest,
        digest,
        "the old-form manifest counts"
    );
    let got: Vec<String> = again
        .manifest
        .unwrap()
        .parents
        .iter()
        .map(|p| p.task_id())
        .collect();
    assert_eq!(got, want);
    assert_eq!(dumped_parents(&sb, "pick"), want);
    verify_and_gc(&sb, &ds, &run, &want);
    assert!(
        new_path.is_file(),
        "gc keeps the manifest the commit record names"
    );
}
