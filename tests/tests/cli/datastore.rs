//! What runs leave in the datastore: content addressing, datastore selection, `verify`,
//! several flows in one datastore, fsync.

use std::collections::{BTreeMap, BTreeSet};

use flowlib::Digest;
use flowlib_testkit::{blob_path, example, text, Sandbox};

use super::{
    announced_run, assert_ok, digest_of, digests, expect_bad_input, hello_objects_sandbox, open,
    run_ok, runs_rows, stderr, stdout,
};

// ---------------------------------------------------------------------------------------
// 4. content addressing

/// The distinct blob digests a `hello` run with `name` references: the initial state
/// (name, and the defaults "" / 0) plus every value its steps produce.
fn hello_blobs(name: &str) -> BTreeSet<Digest> {
    let greeting = format!("Hello, {name}!");
    let letters = greeting.chars().filter(|c| c.is_alphabetic()).count();
    [
        digest_of(&name.to_string()),
        digest_of(&String::new()),
        digest_of(&0usize),
        digest_of(&greeting),
        digest_of(&letters),
        digest_of(&greeting.to_uppercase()),
    ]
    .into_iter()
    .collect()
}

#[test]
fn identical_runs_write_no_new_blobs_and_changed_values_only_their_own() {
    let sb = Sandbox::objects_only();
    let ada1 = run_ok(&sb, "hello", &["run", "-q", "--name", "Ada"]);
    let after_first = sb.blob_count();
    assert_eq!(after_first, hello_blobs("Ada").len());

    // The same run again: every blob already exists.
    let ada2 = run_ok(&sb, "hello", &["run", "-q", "--name", "Ada"]);
    assert_ne!(ada1, ada2);
    assert_eq!(
        sb.blob_count(),
        after_first,
        "a repeated run wrote new blobs"
    );
    let ds = sb.open();
    for task in ["start", "count", "shout", "end"] {
        assert_eq!(
            digests(&ds, "Hello", &ada1, task),
            digests(&ds, "Hello", &ada2, task),
            "task {task}: same values, same digests"
        );
    }
    let end = digests(&ds, "Hello", &ada1, "end");
    assert_eq!(end["name"], digest_of(&"Ada".to_string()));
    assert_eq!(end["greeting"], digest_of(&"Hello, Ada!".to_string()));
    assert_eq!(end["letters"], digest_of(&8usize));
    assert_eq!(end["shout"], digest_of(&"HELLO, ADA!".to_string()));

    // "Bob": name, greeting and shout change; "HelloBob" has 8 letters like "HelloAda".
    let mut expected: BTreeSet<Digest> = hello_blobs("Ada");
    let new: Vec<Digest> = hello_blobs("Bob").difference(&expected).copied().collect();
    assert_eq!(new.len(), 3, "name, greeting, shout");
    expected.extend(new);
    let bob = run_ok(&sb, "hello", &["run", "-q", "--name", "Bob"]);
    assert_eq!(sb.blob_count(), after_first + 3);
    let bob_end = digests(&ds, "Hello", &bob, "end");
    let changed: Vec<&str> = ["name", "greeting", "letters", "shout"]
        .into_iter()
        .filter(|a| bob_end[*a] != end[*a])
        .collect();
    assert_eq!(changed, ["name", "greeting", "shout"]);

    // "Grace": 10 letters, so `letters` changes too.
    let new: Vec<Digest> = hello_blobs("Grace")
        .difference(&expected)
        .copied()
        .collect();
    assert_eq!(new.len(), 4, "name, greeting, letters, shout");
    run_ok(&sb, "hello", &["run", "-q", "--name", "Grace"]);
    assert_eq!(sb.blob_count(), after_first + 3 + 4);
    expected.extend(new);

    // Exactly the expected blobs are on disk, each stored at its own digest.
    let on_disk: BTreeSet<Digest> = expected
        .iter()
        .copied()
        .filter(|d| blob_path(&sb.datastore(), d).is_file())
        .collect();
    assert_eq!(on_disk, expected);
    let v = sb.run("hello", &["verify"]);
    assert_ok(&v);
}

#[test]
fn unchanged_fields_point_at_their_parents_blob() {
    let sb = Sandbox::new();
    let id = run_ok(&sb, "hello", &["run", "-q", "--name", "Ada"]);
    let ds = sb.open();
    let initial: BTreeMap<String, Digest> = ds
        .run_info("Hello", &id)
        .unwrap()
        .record
        .initial
        .into_iter()
        .map(|(k, b)| (k, b.digest))
        .collect();
    assert_eq!(initial["name"], digest_of(&"Ada".to_string()));
    // Which field each step writes; every other field must keep its parent's digest.
    let chain = [
        ("start", Some("greeting")),
        ("count", Some("letters")),
        ("shout", Some("shout")),
        ("end", None),
    ];
    let mut parent = initial;
    for (step, writes) in chain {
        let now = digests(&ds, "Hello", &id, step);
        assert_eq!(
            now.keys().collect::<Vec<_>>(),
            parent.keys().collect::<Vec<_>>(),
            "step {step}: same artifacts"
        );
        for (field, d) in &now {
            if Some(field.as_str()) == writes {
                assert_ne!(*d, parent[field], "step {step} changed `{field}`");
            } else {
                assert_eq!(
                    *d, parent[field],
                    "step {step} did not change `{field}`: it must point at its parent's blob"
                );
            }
        }
        parent = now;
    }
}

// ---------------------------------------------------------------------------------------
// 5. datastore selection

#[test]
fn datastore_flag_with_a_relative_path() {
    let sb = Sandbox::new();
    let id = run_ok(&sb, "hello", &["run", "-q", "--datastore", "store"]);
    assert!(!sb.datastore().exists(), "nothing in ./.flowlib");
    assert!(flowlib::is_datastore_dir(&sb.path().join("store")));
    let ds = open(&sb.path().join("store"));
    assert_eq!(ds.latest_run("Hello").unwrap(), Some(id.clone()));
    let shout: String = ds.artifact("Hello", &id, "end", "shout").unwrap();
    assert_eq!(shout, "HELLO, WORLD!");

    // The flag is global: before the subcommand works too, and reads the same store.
    let r = sb.run("hello", &["--datastore", "store", "runs"]);
    assert_ok(&r);
    let rows = runs_rows(&r);
    assert_eq!(rows.len(), 1, "{}", text(&r));
    assert_eq!(rows[0][0], id);
    assert!(!sb.datastore().exists());
}

#[test]
fn datastore_flag_with_a_file_url() {
    let sb = Sandbox::new();
    let dir = sb.path().join("urlstore");
    let url = format!("file://{}", dir.display());
    let id = run_ok(&sb, "hello", &["run", "-q", "--datastore", &url]);
    assert!(!sb.datastore().exists(), "nothing in ./.flowlib");
    let ds = open(&dir);
    assert_eq!(ds.run_ids("Hello").unwrap(), vec![id.clone()]);
    let d = sb.run(
        "hello",
        &["dump", "latest/end", "shout", "--datastore", &url],
    );
    assert_ok(&d);
    assert_eq!(stdout(&d).trim(), "\"HELLO, WORLD!\"");

    // Percent-escapes in a file:// URL are decoded.
    let url = format!("file://{}/url%20store", sb.path().display());
    let id = run_ok(&sb, "hello", &["run", "-q", "--datastore", &url]);
    let ds = open(&sb.path().join("url store"));
    assert_eq!(ds.run_ids("Hello").unwrap(), vec![id]);
    assert!(!sb.path().join("url%20store").exists());
    assert!(!sb.datastore().exists());
}

#[test]
fn datastore_from_the_environment() {
    let sb = Sandbox::new();
    let o = sb
        .cmd(&example("hello"))
        .args(["run", "-q", "--name", "Env"])
        .env("FLOWLIB_DATASTORE", "envstore")
        .output()
        .unwrap();
    assert_ok(&o);
    let id = announced_run(&o);
    assert!(!sb.datastore().exists(), "nothing in ./.flowlib");
    let ds = open(&sb.path().join("envstore"));
    assert_eq!(ds.run_ids("Hello").unwrap(), vec![id.clone()]);
    let name: String = ds.artifact("Hello", &id, "start", "name").unwrap();
    assert_eq!(name, "Env");
    let d = sb
        .cmd(&example("hello"))
        .args(["dump", "latest/end", "greeting"])
        .env("FLOWLIB_DATASTORE", sb.path().join("envstore"))
        .output()
        .unwrap();
    assert_ok(&d);
    assert_eq!(stdout(&d).trim(), "\"Hello, Env!\"");
}

#[test]
fn datastore_flag_overrides_the_environment() {
    let sb = Sandbox::new();
    let o = sb
        .cmd(&example("hello"))
        .args(["run", "-q", "--datastore", "flagstore"])
        .env("FLOWLIB_DATASTORE", "envstore")
        .output()
        .unwrap();
    assert_ok(&o);
    let id = announced_run(&o);
    assert!(!sb.path().join("envstore").exists());
    assert!(!sb.datastore().exists());
    let ds = open(&sb.path().join("flagstore"));
    assert_eq!(ds.run_ids("Hello").unwrap(), vec![id]);
}

// ---------------------------------------------------------------------------------------
// 9. verify

#[test]
fn verify_detects_a_corrupted_blob() {
    let (sb, id) = hello_objects_sandbox();
    let o = sb.run("hello", &["verify"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("no problems"), "{}", text(&o));
    assert!(!out.contains("problem:"), "{}", text(&o));

    // Damage the blob of `shout` ("HELLO, ADA!", written by `shout`, carried by `end`).
    let ds = sb.open();
    let shout = digests(&ds, "Hello", &id, "end")["shout"];
    let path = blob_path(&sb.datastore(), &shout);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();

    let o = sb.run("hello", &["verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = stdout(&o);
    let digest = shout.to_string();
    for task in ["shout", "end"] {
        assert!(
            out.lines().any(|l| l.contains(&format!("run {id}"))
                && l.contains(&format!("task {task}"))
                && l.contains("`shout`")
                && l.contains(&digest)),
            "verify must name run, task {task}, artifact and digest\n{}",
            text(&o)
        );
    }
    assert!(out.contains("1 problem"), "{}", text(&o));
    let o = sb.run("hello", &["verify", "--run", &id]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stdout(&o).contains(&digest), "{}", text(&o));

    // Reading it fails with one line naming the digest; other artifacts still read.
    let o = sb.run("hello", &["dump", "latest/end", "shout"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stdout(&o).is_empty(), "{}", text(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{}", text(&o));
    assert!(lines[0].starts_with("error:"), "{}", text(&o));
    assert!(lines[0].contains(&digest), "{}", text(&o));
    assert!(lines[0].contains("corrupted"), "{}", text(&o));
    assert!(!err.contains("panicked"), "{}", text(&o));
    // That read moved the damaged copy aside: a second read finds the blob missing, and
    // says where the copy went.
    let err = ds
        .artifact::<String>("Hello", &id, "end", "shout")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing") && err.contains("quarantine/") && err.contains(&digest),
        "{err}"
    );

    let o = sb.run("hello", &["dump", "latest/end", "greeting"]);
    assert_ok(&o);
    assert_eq!(stdout(&o).trim(), "\"Hello, Ada!\"");
}

/// Flip one byte in the middle of a file (its size stays the same); returns the good bytes.
fn flip_a_byte(path: &std::path::Path) -> Vec<u8> {
    let good = std::fs::read(path).unwrap();
    let mut bytes = good.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(path, &bytes).unwrap();
    good
}

/// The damaged blob of a `hello` run: `shout`, written by `shout` and carried by `end`.
fn corrupt_shout(sb: &Sandbox, id: &str) -> (std::path::PathBuf, Vec<u8>) {
    let shout = digests(&sb.open(), "Hello", id, "end")["shout"];
    let path = blob_path(&sb.datastore(), &shout);
    let good = flip_a_byte(&path);
    let o = sb.run("hello", &["verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stdout(&o).contains("hashes to"), "{}", text(&o));
    (path, good)
}

/// Files under the datastore's `quarantine/`.
fn quarantined(sb: &Sandbox) -> usize {
    flowlib_testkit::count_files(&sb.datastore().join("quarantine"))
}

#[test]
fn a_fresh_run_rewrites_a_corrupted_blob() {
    let (sb, id) = hello_objects_sandbox();
    let (path, good) = corrupt_shout(&sb, &id);
    // The same value again: the writer must not trust the damaged copy of the same size.
    run_ok(&sb, "hello", &["run", "-q", "--name", "Ada"]);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        good,
        "the blob was rewritten"
    );
    assert_eq!(quarantined(&sb), 1, "the damaged copy is kept aside");
    let o = sb.run("hello", &["verify"]);
    assert_ok(&o);
    assert!(stdout(&o).contains("no problems"), "{}", text(&o));
}

#[test]
fn resuming_the_producing_step_rewrites_a_corrupted_blob() {
    let (sb, id) = hello_objects_sandbox();
    let (path, good) = corrupt_shout(&sb, &id);
    run_ok(&sb, "hello", &["resume", "-q", "shout"]);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        good,
        "the blob was rewritten"
    );
    let o = sb.run("hello", &["verify"]);
    assert_ok(&o);
    assert!(stdout(&o).contains("no problems"), "{}", text(&o));
}

#[test]
fn verify_repair_quarantines_and_the_next_run_rewrites() {
    let (sb, id) = hello_objects_sandbox();
    let (path, good) = corrupt_shout(&sb, &id);
    let digest = digests(&sb.open(), "Hello", &id, "end")["shout"].to_string();
    let o = sb.run("hello", &["verify", "--repair"]);
    // The data is still damaged until it is produced again: the exit status says so.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = stdout(&o);
    assert!(
        out.lines()
            .any(|l| l.starts_with("quarantined:") && l.contains(&digest)),
        "{}",
        text(&o)
    );
    assert!(out.contains("quarantined 1 corrupt blob"), "{}", text(&o));
    assert!(!path.exists(), "moved aside");
    assert_eq!(quarantined(&sb), 1);

    // Plain verify now finds it missing, and says where the damaged copy went.
    let o = sb.run("hello", &["verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stdout(&o).contains("missing"), "{}", text(&o));
    assert!(stdout(&o).contains("quarantine"), "{}", text(&o));
    let o = sb.run("hello", &["dump", "latest/end", "shout"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("quarantine"), "{}", text(&o));

    run_ok(&sb, "hello", &["run", "-q", "--name", "Ada"]);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        good,
        "the next run rewrote it"
    );
    let o = sb.run("hello", &["verify", "--repair"]);
    assert_ok(&o);
    assert!(stdout(&o).contains("no problems"), "{}", text(&o));
    let o = sb.run("hello", &["dump", &format!("{id}/end"), "shout"]);
    assert_ok(&o);
    assert_eq!(stdout(&o).trim(), "\"HELLO, ADA!\"");
}

#[test]
fn a_corrupted_blob_found_on_read_is_moved_aside() {
    let (sb, id) = hello_objects_sandbox();
    let (path, good) = corrupt_shout(&sb, &id);
    let o = sb.run("hello", &["dump", "latest/end", "shout"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("corrupted"), "{}", text(&o));
    assert!(!path.exists(), "the damaged blob is quarantined on read");
    assert_eq!(quarantined(&sb), 1);
    run_ok(&sb, "hello", &["resume", "-q", "shout"]);
    assert_eq!(std::fs::read(&path).unwrap(), good);
    let o = sb.run("hello", &["verify"]);
    assert_ok(&o);
}

// ---------------------------------------------------------------------------------------
// 10. several flows in one datastore

#[test]
fn two_flows_in_one_datastore_are_listed_separately() {
    let sb = Sandbox::new();
    let hello = run_ok(&sb, "hello", &["run", "-q"]);
    let branch = run_ok(&sb, "branch", &["run", "-q", "--n", "4"]);
    let ds = sb.open();
    assert_eq!(
        ds.flows().unwrap(),
        vec!["Branch".to_string(), "Hello".to_string()]
    );
    assert_eq!(ds.run_ids("Hello").unwrap(), vec![hello.clone()]);
    assert_eq!(ds.run_ids("Branch").unwrap(), vec![branch.clone()]);

    let o = sb.run("hello", &["runs"]);
    assert_ok(&o);
    let rows = runs_rows(&o);
    assert_eq!(rows.len(), 1, "{}", text(&o));
    assert_eq!(rows[0][0], hello);
    assert!(!stdout(&o).contains(&branch));

    let o = sb.run("branch", &["runs"]);
    assert_ok(&o);
    let rows = runs_rows(&o);
    assert_eq!(rows.len(), 1, "{}", text(&o));
    assert_eq!(rows[0][0], branch);
    assert!(!stdout(&o).contains(&hello));

    // Each binary's `latest` is its own flow's run; another flow's run id is unknown to it.
    let o = sb.run("branch", &["dump", "latest/stats", "mean"]);
    assert_ok(&o);
    assert_eq!(stdout(&o).trim(), "2.5");
    expect_bad_input(&sb, "hello", &["dump", &branch], &[&branch]);
}

#[test]
fn fsync_mode_commits_the_same_results() {
    let sb = Sandbox::new();
    let out = sb
        .cmd(&example("hello"))
        .args(["run", "-q", "--name", "Durable"])
        .env("FLOWLIB_FSYNC", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let ds = sb.open();
    let run = ds.latest_run("Hello").unwrap().unwrap();
    let shout: String = ds.artifact("Hello", &run, "end", "shout").unwrap();
    assert_eq!(shout, "HELLO, DURABLE!");
    assert_eq!(flowlib::verify(&ds, None, None).unwrap().problems.len(), 0);
}
