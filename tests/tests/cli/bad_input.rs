//! Bad input: exit 2, one `error:` line, no panic, nothing written.

use flowlib_testkit::{example, text, Sandbox};

use super::{assert_one_line_error, expect_bad_input, hello_sandbox, run_ok, stderr, stdout};

// ---------------------------------------------------------------------------------------
// 6. bad input: exit 2, one `error:` line, no panic, nothing written

#[test]
fn bad_input_unknown_flag() {
    let sb = Sandbox::new();
    expect_bad_input(&sb, "hello", &["run", "--bogus"], &["--bogus"]);
    expect_bad_input(&sb, "hello", &["run", "--name"], &["--name"]);
    expect_bad_input(&sb, "hello", &["run", "-q", "--plain"], &[]);
    expect_bad_input(&sb, "hello", &["frobnicate"], &["frobnicate"]);
    // A near miss names the flag that exists (regression: `--min_len` gave no hint).
    expect_bad_input(
        &sb,
        "hello",
        &["run", "--nam", "x"],
        &["did you mean `--name`?"],
    );
    expect_bad_input(
        &sb,
        "train",
        &["run", "--max_workers", "2"],
        &["did you mean `--max-workers`?"],
    );
    assert!(!sb.datastore().exists());
}

#[test]
fn bad_input_ill_typed_parameter_names_the_flag() {
    // In an existing datastore (see the ignored test below for a fresh directory).
    let sb = Sandbox::new();
    run_ok(&sb, "branch", &["run", "-q", "--n", "3"]);
    for bad in ["abc", "-1", "1.5", ""] {
        expect_bad_input(&sb, "branch", &["run", "--n", bad], &["--n"]);
    }
    let line = expect_bad_input(&sb, "branch", &["run", "--n", "abc"], &["--n"]);
    assert!(line.contains("abc"), "{line}");
    expect_bad_input(
        &sb,
        "train",
        &["run", "--epochs", "many"],
        &["--epochs", "many"],
    );
    assert_eq!(sb.open().run_ids("Branch").unwrap().len(), 1);
}

#[test]

fn bad_input_ill_typed_parameter_in_a_fresh_directory_writes_nothing() {
    let sb = Sandbox::new();
    expect_bad_input(&sb, "branch", &["run", "--n", "abc"], &["--n"]);
    assert!(!sb.datastore().exists(), "no datastore created");
}

#[test]
fn bad_input_unknown_run() {
    let (sb, _) = hello_sandbox();
    expect_bad_input(&sb, "hello", &["dump", "nope"], &["nope"]);
    expect_bad_input(&sb, "hello", &["dump", "nope/end", "greeting"], &["nope"]);
    expect_bad_input(&sb, "hello", &["verify", "--run", "nope"], &["nope"]);
}

#[test]
fn bad_input_invalid_run_id() {
    let (sb, id) = hello_sandbox();
    for target in ["../x", "..", ".", "", "a b", "..%2f", "x\\y"] {
        expect_bad_input(&sb, "hello", &["dump", target], &["invalid run id"]);
    }
    // A valid but unknown run id followed by too many parts.
    expect_bad_input(&sb, "hello", &["dump", "a/b/c/d"], &["`a`"]);
    // A real run with a malformed task index.
    expect_bad_input(
        &sb,
        "hello",
        &["dump", &format!("{id}/end/x/y"), "greeting"],
        &["x/y"],
    );
    expect_bad_input(&sb, "hello", &["dump", "latest/end/1/2"], &["1/2"]);
}

#[test]
fn bad_input_unknown_step() {
    let (sb, _) = hello_sandbox();
    expect_bad_input(&sb, "hello", &["dump", "latest/nosuch"], &["nosuch"]);
    expect_bad_input(
        &sb,
        "hello",
        &["dump", "latest/nosuch", "greeting"],
        &["nosuch"],
    );
}

#[test]
fn bad_input_unknown_artifact() {
    let (sb, id) = hello_sandbox();
    expect_bad_input(&sb, "hello", &["dump", "latest/end", "nosuch"], &["nosuch"]);
    expect_bad_input(
        &sb,
        "hello",
        &["dump", &format!("{id}/count"), "bogus"],
        &["bogus"],
    );
}

#[test]
fn bad_input_datastore_is_a_regular_file() {
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("afile"), "not a datastore").unwrap();
    for args in [
        &["run", "--datastore", "afile"][..],
        &["runs", "--datastore", "afile"],
        &["dump", "latest", "--datastore", "afile"],
        &["verify", "--datastore", "afile"],
    ] {
        expect_bad_input(&sb, "hello", args, &["afile", "not a directory"]);
    }
}

#[test]
fn bad_input_datastore_is_a_foreign_directory() {
    let sb = Sandbox::new();
    let dir = sb.path().join("foreign");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "my notes").unwrap();
    for args in [
        &["run", "--datastore", "foreign"][..],
        &["runs", "--datastore", "foreign"],
        &["dump", "latest", "--datastore", "foreign"],
    ] {
        expect_bad_input(&sb, "hello", args, &["foreign"]);
        assert!(!dir.join("datastore.json").exists());
    }
    let o = sb
        .cmd(&example("hello"))
        .args(["run"])
        .env("FLOWLIB_DATASTORE", &dir)
        .output()
        .unwrap();
    assert_one_line_error(&o, &["foreign"]);
    assert!(!dir.join("datastore.json").exists());
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "only notes.txt"
    );
}

#[test]
fn bad_input_datastore_does_not_exist() {
    let sb = Sandbox::new();
    for args in [
        &["runs", "--datastore", "nowhere"][..],
        &["dump", "latest", "--datastore", "nowhere"],
        &["dump", "latest/end", "greeting", "--datastore", "nowhere"],
        &["verify", "--datastore", "nowhere"],
        &["resume", "--datastore", "nowhere"],
    ] {
        expect_bad_input(&sb, "hello", args, &["nowhere"]);
        assert!(!sb.path().join("nowhere").exists());
    }
    // The default ./.flowlib, not there yet.
    expect_bad_input(&sb, "hello", &["runs"], &[".flowlib"]);
    expect_bad_input(&sb, "hello", &["dump", "latest"], &[".flowlib"]);
    assert!(!sb.datastore().exists());
}

#[test]
fn bad_input_max_workers_zero() {
    let sb = Sandbox::new();
    expect_bad_input(
        &sb,
        "hello",
        &["run", "--max-workers", "0"],
        &["--max-workers"],
    );
    expect_bad_input(&sb, "hello", &["run", "--max-workers", "two"], &["two"]);
    assert!(!sb.datastore().exists());
}

#[test]
fn bad_input_max_memory_bad_unit() {
    let sb = Sandbox::new();
    expect_bad_input(&sb, "hello", &["run", "--max-memory", "4GB"], &["4GB"]);
    expect_bad_input(&sb, "hello", &["run", "--max-memory", "lots"], &["lots"]);
    assert!(!sb.datastore().exists());
}

#[test]
fn bad_input_memory_budget_too_small_for_a_step() {
    let sb = Sandbox::new();
    // `squares` asks for 64MiB.
    expect_bad_input(
        &sb,
        "branch",
        &["run", "--max-memory", "1KiB"],
        &["squares"],
    );
    assert!(!sb.datastore().exists());
}

#[test]
fn bad_input_datastore_url() {
    let sb = Sandbox::new();
    expect_bad_input(&sb, "hello", &["run", "--datastore", ""], &["empty"]);
    expect_bad_input(
        &sb,
        "hello",
        &["run", "--datastore", "ftp://x/y"],
        &["ftp://"],
    );
    assert!(!sb.datastore().exists());
}

#[test]
fn dump_of_an_artifact_of_a_foreach_step_needs_a_task_index() {
    let sb = Sandbox::new();
    let id = run_ok(&sb, "train", &["run", "-q"]);
    let o = sb.run("train", &["dump", "latest/fit", "score"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{}", text(&o));
    assert!(lines[0].starts_with("error: "), "{}", text(&o));
    assert!(lines[0].contains(&format!("{id}/fit/0")), "{}", text(&o));
}

#[test]
fn bad_input_show_format_png() {
    let sb = Sandbox::new();
    expect_bad_input(&sb, "hello", &["show", "--format", "png"], &["png"]);
}

/// With no subcommand, clap prints the usage (many lines) on stderr: asserted here are
/// exit 2, nothing on stdout, a usage text listing the verbs, no panic, nothing written.
#[test]
fn no_subcommand_prints_usage_and_exits_2() {
    let sb = Sandbox::new();
    let o = sb
        .cmd(&example("hello"))
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stdout(&o).is_empty(), "{}", text(&o));
    let err = stderr(&o);
    assert!(err.contains("Usage:"), "{}", text(&o));
    for verb in [
        "run", "resume", "show", "check", "runs", "dump", "verify", "gc",
    ] {
        assert!(
            err.lines()
                .any(|l| l.split_whitespace().next() == Some(verb)),
            "usage lists `{verb}`\n{}",
            text(&o)
        );
    }
    assert!(!err.contains("panicked") && !err.contains("backtrace"));
    assert!(
        sb.path().read_dir().unwrap().next().is_none(),
        "nothing written"
    );
}

/// Regression (#8): `gc --grace` refuses huge values in one line (it used to panic) and a
/// grace below the safe minimum unless `--force` is given.
#[test]
fn bad_input_gc_grace() {
    let (sb, _) = hello_sandbox();
    for huge in ["100000000d", "99999999999999999999999d"] {
        expect_bad_input(&sb, "hello", &["gc", "--grace", huge], &[huge]);
    }
    expect_bad_input(&sb, "hello", &["gc", "--grace", "soon"], &["soon"]);
    let line = expect_bad_input(&sb, "hello", &["gc", "--grace", "5m"], &["--force"]);
    assert!(line.contains("safe minimum"), "{line}");
    let o = sb.run("hello", &["gc", "--grace", "500ms", "--force", "--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("would delete"), "{}", stdout(&o));
}
