//! A run whose disk fills up right before it writes its end record: it must exit non-zero
//! naming the record and the OS error, and `runs` must show it as failed, not killed
//! (hardening #8, item 10). Needs root, to mount a small tmpfs as the datastore.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use flowlib::{Datastore, OpenMode, RunStatus};
use flowlib_testkit::{example, Sandbox};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        match o.status.success() {
            true => Ok(Tmpfs(dir.to_path_buf())),
            false => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Write into `dir` until the filesystem refuses (ENOSPC): nothing is left for anyone.
fn fill(dir: &Path) {
    let mut f = std::fs::File::create(dir.join("filler")).expect("create the filler");
    let chunk = vec![0x5a_u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    // The last pages, a smaller write at a time.
    for n in [4096, 512, 1] {
        while f.write_all(&chunk[..n]).is_ok() {}
    }
    let _ = f.sync_all();
}

#[test]
fn a_run_that_cannot_write_its_end_record_for_a_full_disk_is_failed_not_killed() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "\n!!! SKIPPED a_run_that_cannot_write_its_end_record_for_a_full_disk_is_failed_not_killed: \
             it mounts a tmpfs and must run as root (CI does) !!!\n"
        );
        return;
    }
    let sb = Sandbox::new();
    let store = sb.path().join("small");
    let _mounted = match Tmpfs::mount(&store, "4m") {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "\n!!! SKIPPED: cannot mount a tmpfs here ({}) !!!\n",
                e.trim()
            );
            return;
        }
    };
    let release = sb.path().join("release");
    let mut child = sb
        .cmd(&example("hello"))
        .args(["run", "-q", "--datastore"])
        .arg(&store)
        .env("FLOWLIB_TEST_HOLD", "before-run-end")
        .env("FLOWLIB_TEST_RELEASE", &release)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hello");
    // Every task has committed when the run reaches the hold: fill the disk, let it go on.
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut stderr = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).expect("read stderr") == 0 {
            panic!("hello exited before its end record\n{stderr}");
        }
        stderr.push_str(&line);
        if line.starts_with("FLOWLIB_HOLD before-run-end") {
            break;
        }
    }
    fill(&store);
    std::fs::write(&release, "").expect("release the run");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).expect("read stderr");
    stderr.push_str(&rest);
    let status = child.wait().expect("wait for hello");

    assert!(!status.success(), "the run must fail\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for want in [
        "could not write its end record",
        "end.json",
        "No space left on device",
        "its heartbeat records the run as failed",
    ] {
        assert!(stderr.contains(want), "stderr lacks `{want}`\n{stderr}");
    }

    let ds = Datastore::open(store.to_str().unwrap(), OpenMode::Existing).unwrap();
    let id = ds.latest_run("Hello").unwrap().expect("the run is listed");
    let info = ds.run_info("Hello", &id).unwrap();
    assert!(info.end.is_none(), "no end record could be written");
    assert_eq!(info.status(), RunStatus::Failed);
    assert!(
        info.end_error()
            .is_some_and(|e| e.contains("No space left")),
        "{:?}",
        info.end_error()
    );

    let o = sb
        .cmd(&example("hello"))
        .args(["runs", "--datastore"])
        .arg(&store)
        .output()
        .expect("runs");
    let table = String::from_utf8_lossy(&o.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with(id.as_str()))
        .unwrap_or_else(|| panic!("no row for {id}\n{table}"));
    let state = row.split_whitespace().nth(1).unwrap();
    assert_eq!(state, "failed", "not `killed`: {row}");
    assert!(row.contains("end record not written"), "{row}");
}
