//! The Slurm command-line tools, called and parsed: `sbatch --parsable`, batched
//! `squeue -h -t all -r -j ...`, `scontrol -o show job`, `scancel`, `sbatch --test-only`.
//! Formats are those of Slurm 22.05 and later (see `scripts/slurm-notes.md` for the exact
//! outputs this parser was written against).

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// One array task (or a plain job: index `None`) of a submitted job.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct JobTask {
    pub(crate) job: u64,
    pub(crate) index: Option<u32>,
}

impl std::fmt::Display for JobTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}_{i}", self.job),
            None => write!(f, "{}", self.job),
        }
    }
}

/// What `squeue` says of a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueueState {
    pub(crate) state: String,
    pub(crate) reason: String,
}

impl QueueState {
    pub(crate) fn is_pending(&self) -> bool {
        self.state == "PENDING"
    }

    /// Over: the job will not run (on) any more.
    pub(crate) fn is_terminal(&self) -> bool {
        matches!(
            self.state.as_str(),
            "COMPLETED"
                | "FAILED"
                | "CANCELLED"
                | "TIMEOUT"
                | "OUT_OF_MEMORY"
                | "NODE_FAIL"
                | "PREEMPTED"
                | "BOOT_FAIL"
                | "DEADLINE"
                | "SPECIAL_EXIT"
                | "REVOKED"
        )
    }
}

/// A tool's stderr as one line: its non-empty lines, `sbatch: error: ` prefixes dropped.
fn error_lines(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(|l| l.trim_start_matches("sbatch: error: ").trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Run a Slurm tool; its stdout, or an error with its stderr.
fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::invalid(format!("cannot run `{what}`: {e}")))?;
    if !out.status.success() {
        let err = error_lines(&out.stderr);
        return Err(Error::invalid(format!("`{what}` failed: {err}")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `tool` is on PATH.
pub(crate) fn has_tool(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| crate::exec::child::is_executable(&d.join(tool)))
    })
}

/// Submit `script` (given on stdin) with `args`; `env` are the variables sbatch itself gets
/// (and, through `--export`, the job). Returns the job id.
pub(crate) fn sbatch(args: &[String], env: &[(String, String)], script: &str) -> Result<u64> {
    let mut child = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::invalid(format!("cannot run `sbatch`: {e}")))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(|e| Error::invalid(format!("cannot write the job script to sbatch: {e}")))?;
    let out = child
        .wait_with_output()
        .map_err(|e| Error::invalid(format!("sbatch: {e}")))?;
    if !out.status.success() {
        let err = error_lines(&out.stderr);
        return Err(Error::invalid(format!("sbatch refused the job: {err}")));
    }
    parse_parsable(&String::from_utf8_lossy(&out.stdout))
}

/// `sbatch --parsable` prints `id` or `id;cluster`.
pub(crate) fn parse_parsable(out: &str) -> Result<u64> {
    let line = out.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let id = line.split(';').next().unwrap_or("").trim();
    id.parse()
        .map_err(|_| Error::invalid(format!("sbatch printed no job id: {out:?}")))
}

/// Validate a job without submitting it (`sbatch --test-only`): Slurm itself says whether
/// the partition exists and the request fits it.
pub(crate) fn test_only(args: &[String]) -> Result<()> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--test-only")
        .args(args)
        .arg("--wrap=true")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let out = cmd
        .output()
        .map_err(|e| Error::invalid(format!("cannot run `sbatch`: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let msg: Vec<&str> = err
        .lines()
        .map(|l| l.trim_start_matches("sbatch: error: ").trim())
        .filter(|l| !l.is_empty() && !l.starts_with("Job ") && !l.starts_with("sbatch: Job"))
        .collect();
    Err(Error::invalid(msg.join("; ")))
}

/// Memory limits of a partition, in MiB (`None`: unlimited), from `scontrol`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PartitionMemory {
    pub(crate) name: String,
    pub(crate) max_per_node: Option<u64>,
    pub(crate) max_per_cpu: Option<u64>,
    /// What a job without `--mem` gets per CPU (the partition's, else the cluster's).
    pub(crate) default_per_cpu: Option<u64>,
}

/// The memory limits of `partition` (`None`: the default partition).
pub(crate) fn partition_memory(partition: Option<&str>) -> Result<Option<PartitionMemory>> {
    let out = run(
        Command::new("scontrol").args(["-o", "show", "partition"]),
        "scontrol show partition",
    )?;
    let config = run(
        Command::new("scontrol").args(["show", "config"]),
        "scontrol show config",
    )?;
    let cluster_default = config.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "DefMemPerCPU")
            .then(|| v.trim().parse::<u64>().ok())
            .flatten()
    });
    Ok(parse_partitions(&out, partition, cluster_default))
}

/// The partition named `partition` (or the `Default=YES` one) in `scontrol -o` output.
pub(crate) fn parse_partitions(
    out: &str,
    partition: Option<&str>,
    cluster_default: Option<u64>,
) -> Option<PartitionMemory> {
    for line in out.lines() {
        let kv: HashMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let name = kv.get("PartitionName").copied().unwrap_or("");
        let pick = match partition {
            Some(p) => name == p,
            None => kv.get("Default") == Some(&"YES"),
        };
        if !pick {
            continue;
        }
        let num = |k: &str| kv.get(k).and_then(|v| v.parse::<u64>().ok());
        return Some(PartitionMemory {
            name: name.to_string(),
            max_per_node: num("MaxMemPerNode"),
            max_per_cpu: num("MaxMemPerCPU"),
            default_per_cpu: num("DefMemPerCPU").or(cluster_default),
        });
    }
    None
}

/// Why a job of `cpus` CPUs asking `mem_mib` (or the default) does not fit partition `p`.
pub(crate) fn memory_misfit(
    p: &PartitionMemory,
    cpus: u64,
    mem_mib: Option<u64>,
) -> Option<String> {
    let (mem, how) = match (mem_mib, p.default_per_cpu) {
        (Some(m), _) => (m, "its #[resources(memory)]".to_string()),
        (None, Some(d)) => (
            d * cpus,
            format!("Slurm's default of {d} MiB per CPU, as the step sets no #[resources(memory)]"),
        ),
        (None, None) => return None,
    };
    if let Some(max) = p.max_per_node.filter(|&m| mem > m) {
        return Some(format!(
            "it would ask for {mem} MiB ({how}) but partition `{}` allows at most {max} MiB per node",
            p.name
        ));
    }
    if let Some(max) = p.max_per_cpu.filter(|&m| mem > m * cpus) {
        return Some(format!(
            "it would ask for {mem} MiB ({how}) but partition `{}` allows at most {max} MiB per CPU",
            p.name
        ));
    }
    None
}

/// The state of every listed task, finished ones included (`squeue -t all` keeps them for
/// `MinJobAge`). Jobs Slurm no longer knows are simply absent.
pub(crate) fn squeue(jobs: &[u64]) -> Result<HashMap<JobTask, QueueState>> {
    if jobs.is_empty() {
        return Ok(HashMap::new());
    }
    let list = jobs
        .iter()
        .map(|j| j.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let out = Command::new("squeue")
        .args(["-h", "-t", "all", "-r", "-o", "%i|%T|%r", "-j", &list])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::invalid(format!("cannot run `squeue`: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // One unknown id alone makes squeue fail with this; it is an answer, not an error.
        if !err.contains("Invalid job id") {
            return Err(Error::invalid(format!("`squeue` failed: {}", err.trim())));
        }
    }
    Ok(parse_squeue(&stdout))
}

/// Lines of `%i|%T|%r`: `12|RUNNING|None`, `18_3|PENDING|JobArrayTaskLimit`; a collapsed
/// pending range (`18_[2-9%2]`) is expanded.
pub(crate) fn parse_squeue(out: &str) -> HashMap<JobTask, QueueState> {
    let mut map = HashMap::new();
    for line in out.lines() {
        let mut parts = line.splitn(3, '|');
        let (Some(id), Some(state), Some(reason)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let st = QueueState {
            state: state.trim().to_string(),
            reason: reason.trim().to_string(),
        };
        for t in parse_task_ids(id.trim()) {
            map.insert(t, st.clone());
        }
    }
    map
}

/// `12`, `18_3`, `18_[2-9%2]`, `18_[1,4-6]`.
fn parse_task_ids(id: &str) -> Vec<JobTask> {
    let Some((job, rest)) = id.split_once('_') else {
        return id
            .parse()
            .map(|job| vec![JobTask { job, index: None }])
            .unwrap_or_default();
    };
    let Ok(job) = job.parse::<u64>() else {
        return Vec::new();
    };
    if let Ok(i) = rest.parse::<u32>() {
        return vec![JobTask {
            job,
            index: Some(i),
        }];
    }
    let inner = rest.trim_start_matches('[').trim_end_matches(']');
    let inner = inner.split('%').next().unwrap_or("");
    let mut out = Vec::new();
    for part in inner.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
            for i in a..=b.min(a.saturating_add(100_000)) {
                out.push(JobTask {
                    job,
                    index: Some(i),
                });
            }
        }
    }
    out
}

/// What `scontrol -o show job <task>` says of a finished task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct JobRecord {
    pub(crate) state: String,
    pub(crate) reason: String,
    /// `ExitCode=<status>:<signal>`.
    pub(crate) exit: Option<(i32, i32)>,
    pub(crate) node: String,
    pub(crate) stdout: String,
    pub(crate) run_time: String,
    pub(crate) time_limit: String,
}

/// `scontrol -o show job <task>`, `None` when Slurm no longer knows it.
pub(crate) fn scontrol_show(task: &JobTask) -> Result<Option<JobRecord>> {
    let out = Command::new("scontrol")
        .args(["-o", "show", "job", &task.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::invalid(format!("cannot run `scontrol`: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("Invalid job id") {
            return Ok(None);
        }
        return Err(Error::invalid(format!("`scontrol` failed: {}", err.trim())));
    }
    Ok(parse_scontrol(&String::from_utf8_lossy(&out.stdout), task))
}

/// The record of `task` in `scontrol -o` output (one line per job, `Key=Value` words).
pub(crate) fn parse_scontrol(out: &str, task: &JobTask) -> Option<JobRecord> {
    for line in out.lines() {
        let kv: HashMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let matches = match task.index {
            Some(i) => {
                kv.get("ArrayJobId").and_then(|v| v.parse::<u64>().ok()) == Some(task.job)
                    && kv.get("ArrayTaskId").and_then(|v| v.parse::<u32>().ok()) == Some(i)
            }
            None => kv.get("JobId").and_then(|v| v.parse::<u64>().ok()) == Some(task.job),
        };
        if !matches {
            continue;
        }
        let exit = kv.get("ExitCode").and_then(|v| {
            let (a, b) = v.split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        });
        let get = |k: &str| kv.get(k).map(|v| v.to_string()).unwrap_or_default();
        return Some(JobRecord {
            state: get("JobState"),
            reason: get("Reason"),
            exit,
            node: get("NodeList"),
            stdout: get("StdOut"),
            run_time: get("RunTime"),
            time_limit: get("TimeLimit"),
        });
    }
    None
}

/// Cancel jobs or array tasks (`scancel 12 18_3 ...`).
pub(crate) fn scancel(targets: &[String]) -> Result<()> {
    if targets.is_empty() {
        return Ok(());
    }
    for chunk in targets.chunks(500) {
        run(Command::new("scancel").args(chunk), "scancel")?;
    }
    Ok(())
}

/// Jobs whose name starts with `prefix` (the jobs of one run): `squeue -h -o '%F|%j'`.
pub(crate) fn jobs_named(prefix: &str) -> Result<Vec<u64>> {
    let out = run(Command::new("squeue").args(["-h", "-o", "%F|%j"]), "squeue")?;
    let mut ids: Vec<u64> = out
        .lines()
        .filter_map(|l| {
            let (id, name) = l.split_once('|')?;
            name.starts_with(prefix).then(|| id.trim().parse().ok())?
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// How a finished job that left no commit record died, in one line, and whether the
/// platform (not the task's code) is to blame. `stderr_tail` is the end of the job's Slurm
/// output file, where slurmstepd writes why it killed a job.
pub(crate) fn explain(rec: &JobRecord, stderr_tail: &str, mem: Option<u64>) -> (String, bool) {
    let mem_text = mem
        .map(crate::flow::graph::format_bytes)
        .unwrap_or_else(|| "its --mem".into());
    if rec.state == "OUT_OF_MEMORY" || stderr_tail.contains("exceeded memory limit") {
        return (
            format!(
                "out of memory: Slurm killed the job at its memory limit of {mem_text} (#[resources(memory)] sets --mem)"
            ),
            false,
        );
    }
    let node = if rec.node.is_empty() || rec.node == "(null)" {
        String::new()
    } else {
        format!(" on {}", rec.node)
    };
    match rec.state.as_str() {
        "TIMEOUT" => (
            format!(
                "timed out: Slurm's time limit of {} was reached{node} (#[slurm(time)] or #[timeout] sets --time)",
                rec.time_limit
            ),
            false,
        ),
        "DEADLINE" => ("Slurm cancelled the job at its --deadline".into(), false),
        "CANCELLED" => (
            format!("cancelled: the Slurm job was cancelled (scancel){node}, outside flowlib"),
            false,
        ),
        "NODE_FAIL" => (
            format!("the node failed{node}: Slurm reports NODE_FAIL (a platform failure)"),
            true,
        ),
        "PREEMPTED" => (
            format!("preempted{node}: Slurm preempted the job (a platform failure)"),
            true,
        ),
        "BOOT_FAIL" => (
            format!("the node could not boot{node}: Slurm reports BOOT_FAIL (a platform failure)"),
            true,
        ),
        "COMPLETED" => (
            format!("the job completed{node} but its task recorded no result (the task process exited 0 without committing)"),
            false,
        ),
        _ => {
            let how = match rec.exit {
                Some((_, sig)) if sig != 0 => format!(
                    "killed by signal {sig} ({})",
                    crate::exec::child::signal_name(sig)
                ),
                Some((code, _)) => format!("exit code {code}"),
                None => "no exit code".into(),
            };
            (
                format!(
                    "the Slurm job ended {} ({how}, Reason={}){node}",
                    rec.state, rec.reason
                ),
                false,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_and_collapsed_ranges() {
        let m = parse_squeue(
            "18_[2-4%2]|PENDING|JobArrayTaskLimit\n18_1|RUNNING|None\n7|COMPLETED|None\n9_[1,3]|PENDING|Priority\n",
        );
        let t = |job, index| JobTask { job, index };
        assert_eq!(m.len(), 7);
        assert_eq!(m[&t(18, Some(3))].reason, "JobArrayTaskLimit");
        assert!(m[&t(18, Some(1))].state == "RUNNING");
        assert!(m[&t(7, None)].is_terminal());
        assert!(m[&t(9, Some(3))].is_pending());
        assert!(!m.contains_key(&t(9, Some(2))));
    }

    #[test]
    fn scontrol_record_of_an_array_task() {
        let out = "JobId=18 ArrayJobId=18 ArrayTaskId=9 JobState=COMPLETED Reason=None ExitCode=0:0 NodeList=vm\n\
                   JobId=46 ArrayJobId=18 ArrayTaskId=5 JobState=FAILED Reason=NonZeroExitCode ExitCode=7:0 NodeList=vm StdOut=/tmp/x_18_5.out TimeLimit=00:01:00\n";
        let r = parse_scontrol(
            out,
            &JobTask {
                job: 18,
                index: Some(5),
            },
        )
        .unwrap();
        assert_eq!(r.state, "FAILED");
        assert_eq!(r.exit, Some((7, 0)));
        assert_eq!(r.stdout, "/tmp/x_18_5.out");
        assert!(parse_scontrol(
            out,
            &JobTask {
                job: 18,
                index: Some(4)
            }
        )
        .is_none());
        let plain =
            "JobId=5 JobName=x JobState=FAILED Reason=JobLaunchFailure ExitCode=0:9 NodeList=vm";
        let r = parse_scontrol(
            plain,
            &JobTask {
                job: 5,
                index: None,
            },
        )
        .unwrap();
        assert_eq!(r.exit, Some((0, 9)));
    }

    #[test]
    fn failures_are_explained_and_classified() {
        let rec = |state: &str, exit| JobRecord {
            state: state.into(),
            reason: "JobLaunchFailure".into(),
            exit,
            node: "vm".into(),
            time_limit: "00:01:00".into(),
            ..JobRecord::default()
        };
        let oom_tail = "slurmstepd-vm: error: StepId=5.batch exceeded memory limit (436252672 > 52428800), being killed";
        let (m, p) = explain(&rec("FAILED", Some((0, 9))), oom_tail, Some(64 << 20));
        assert!(m.starts_with("out of memory") && m.contains("64MiB"), "{m}");
        assert!(!p);
        let (m, _) = explain(&rec("TIMEOUT", Some((0, 15))), "", None);
        assert!(m.starts_with("timed out") && m.contains("00:01:00"), "{m}");
        let (m, p) = explain(&rec("CANCELLED", Some((0, 15))), "", None);
        assert!(m.starts_with("cancelled"), "{m}");
        assert!(!p);
        assert!(explain(&rec("NODE_FAIL", None), "", None).1);
        assert!(explain(&rec("PREEMPTED", None), "", None).1);
        let (m, _) = explain(&rec("FAILED", Some((0, 11))), "", None);
        assert!(m.contains("SIGSEGV"), "{m}");
    }

    #[test]
    fn partition_memory_limits() {
        let out =
            "PartitionName=debug Default=YES MaxMemPerNode=UNLIMITED DefMemPerNode=UNLIMITED\n\
                   PartitionName=small Default=NO MaxMemPerNode=512 DefMemPerNode=UNLIMITED\n";
        let d = parse_partitions(out, None, Some(1024)).unwrap();
        assert_eq!((d.name.as_str(), d.max_per_node), ("debug", None));
        let s = parse_partitions(out, Some("small"), Some(1024)).unwrap();
        assert_eq!(s.max_per_node, Some(512));
        let why = memory_misfit(&s, 1, None).unwrap();
        assert!(
            why.contains("1024 MiB") && why.contains("at most 512"),
            "{why}"
        );
        assert!(memory_misfit(&s, 1, Some(256)).is_none());
        assert!(memory_misfit(&s, 1, Some(600)).is_some());
        assert!(parse_partitions(out, Some("nosuch"), None).is_none());
    }

    #[test]
    fn parsable_output() {
        assert_eq!(parse_parsable("123\n").unwrap(), 123);
        assert_eq!(parse_parsable("123;cluster\n").unwrap(), 123);
        assert!(parse_parsable("").is_err());
    }
}
