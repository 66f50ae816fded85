//! The commands of the README's "Tracking experiments" section work as written, on the
//! `train` example (`<run>` stands for the section's two runs).

use flowlib_testkit::{text, Sandbox};

/// Split a shell line into words: single and double quotes, `#` comments.
fn words(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (None, '#') if !any => break,
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, ' ') => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

#[test]
fn the_tracking_section_commands_work() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme.find("## Tracking experiments").expect("the section");
    let end = start
        + readme[start..]
            .find("\n## Reading results")
            .expect("its end");
    let prefix = "cargo run --example train -- ";
    let commands: Vec<&str> = readme[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .collect();
    assert!(commands.len() >= 12, "{commands:?}");
    let sb = Sandbox::new();
    let mut runs: Vec<String> = Vec::new();
    for cmd in commands {
        let mut args = words(cmd);
        let mut k = 0;
        for a in args.iter_mut() {
            if a == "<run>" {
                *a = runs[k % runs.len()].clone();
                k += 1;
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = sb.run("train", &args);
        assert_eq!(o.status.code(), Some(0), "{cmd}\n{}", text(&o));
        if args[0] == "run" {
            let ds = sb.open();
            runs.push(ds.latest_run("Train").unwrap().unwrap());
        }
        let out = String::from_utf8_lossy(&o.stdout);
        if args[0] == "runs" && args.contains(&"--where") {
            assert!(
                out.contains(&runs[0]) && !out.contains(&runs[1]),
                "{cmd}\n{out}"
            );
        }
        if args[0] == "lineage" {
            assert!(
                out.contains("produced by") && out.contains("alias champion"),
                "{out}"
            );
        }
    }
}
