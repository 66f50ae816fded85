//! The pure part of the AWS Batch engine: job names, resource requirements, the limits of a
//! queue's compute environments, and how a job that ended without a commit record is told
//! in one line. No I/O here, so every rule has a unit test.

use std::fmt;

use crate::flow::Resources;

/// The handle of one submitted task: a job, or one child of an array job
/// (`<parent id>:<index>`, as AWS Batch names them).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct JobId {
    /// The job id (an array's parent id for its children).
    pub(crate) job: String,
    /// The array index of a child.
    pub(crate) index: Option<u32>,
}

impl JobId {
    /// Parse `<id>` or `<parent id>:<index>`.
    pub(crate) fn parse(s: &str) -> JobId {
        match s.rsplit_once(':') {
            Some((job, i)) if i.parse::<u32>().is_ok() => JobId {
                job: job.to_string(),
                index: i.parse().ok(),
            },
            _ => JobId {
                job: s.to_string(),
                index: None,
            },
        }
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}:{i}", self.job),
            None => f.write_str(&self.job),
        }
    }
}

/// AWS Batch's limit on a job name.
const JOB_NAME_MAX: usize = 128;

/// What every job name of a run starts with (`cancel <run>` lists them by it).
pub(crate) fn job_name_prefix(flow: &str, run: &str) -> String {
    let name = job_name(flow, run, "", 0);
    name.strip_suffix("--a0").unwrap_or(&name).to_string() + "-"
}

/// The job name of a group: `<flow>-<run>-<step>-a<attempt>`, in the characters Batch allows
/// (letters, digits, `-`, `_`), at most 128 of them (the step and attempt are kept).
pub(crate) fn job_name(flow: &str, run: &str, step: &str, attempt: u32) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let tail = format!("-{}-a{attempt}", clean(step));
    let mut head = format!("{}-{}", clean(flow), clean(run));
    let room = JOB_NAME_MAX.saturating_sub(tail.len()).max(1);
    if head.len() > room {
        head.truncate(room);
    }
    let mut name = head + &tail;
    name.truncate(JOB_NAME_MAX);
    name
}

/// `resourceRequirements` of a step's jobs: `(type, value)` for VCPU, MEMORY (MiB, rounded
/// up) and GPU.
pub(crate) fn requirements(r: &Resources) -> Vec<(&'static str, String)> {
    let mut out = vec![("VCPU", r.cpu.max(1).to_string())];
    if let Some(m) = r.memory {
        out.push(("MEMORY", m.div_ceil(1 << 20).max(1).to_string()));
    }
    if r.gpu > 0 {
        out.push(("GPU", r.gpu.to_string()));
    }
    out
}

/// `timeout.attemptDurationSeconds` for a step's `#[timeout]`: whole seconds, at least 60
/// (AWS Batch's minimum). flowlib fences the attempt at its own timeout and terminates the
/// job; Batch's limit is the backstop when no driver is left to do it.
pub(crate) fn attempt_duration(timeout_ms: Option<u64>) -> Option<i32> {
    timeout_ms.map(|ms| ms.div_ceil(1000).clamp(60, i32::MAX as u64) as i32)
}

/// What the compute environments of a queue can place, as far as `DescribeComputeEnvironments`
/// tells it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Capacity {
    /// The environment's name.
    pub(crate) name: String,
    /// `FARGATE` / `FARGATE_SPOT`, `EC2` / `SPOT`, or `UNMANAGED`.
    pub(crate) kind: String,
    /// `maxvCpus` (managed) or `unmanagedvCpus`.
    pub(crate) max_vcpus: Option<u32>,
    /// The instance types it may launch (`optimal`, families like `m5` or sizes like
    /// `m5.xlarge`).
    pub(crate) instance_types: Vec<String>,
}

/// Fargate's largest task: 16 vCPU, 120 GiB, no GPU.
const FARGATE_VCPUS: u32 = 16;
const FARGATE_MEMORY: u64 = 120 << 30;

/// vCPUs and memory of an EC2 instance size in the c, m and r families (`m5.xlarge`: 4 vCPU,
/// 16 GiB); `None` for what this table does not know (then no memory check is made).
fn instance_shape(t: &str) -> Option<(u32, u64)> {
    let (family, size) = t.split_once('.')?;
    let per_vcpu: u64 = match family.chars().next()? {
        'c' => 2,
        'm' => 4,
        'r' => 8,
        _ => return None,
    };
    let vcpus: u32 = match size {
        "large" => 2,
        "xlarge" => 4,
        s => 4 * s.strip_suffix("xlarge")?.parse::<u32>().ok()?,
    };
    Some((vcpus, (u64::from(vcpus) * per_vcpu) << 30))
}

/// Whether an instance type (family or size) has GPUs (the p and g families).
fn has_gpu(t: &str) -> bool {
    let mut c = t.chars();
    matches!(c.next(), Some('p' | 'g')) && c.next().is_some_and(|d| d.is_ascii_digit())
}

/// Why no compute environment of a queue could ever run a job asking for `r`, or `None`
/// when one could (or when the environments do not say enough to tell).
pub(crate) fn misfit(r: &Resources, envs: &[Capacity]) -> Option<String> {
    if envs.is_empty() {
        return None;
    }
    let mut why = Vec::new();
    for e in envs {
        match fits(r, e) {
            Ok(()) => return None,
            Err(w) => why.push(format!("{} ({}): {w}", e.name, e.kind)),
        }
    }
    Some(why.join("; "))
}

fn fits(r: &Resources, e: &Capacity) -> Result<(), String> {
    let cpu = r.cpu.max(1);
    let fargate = e.kind.starts_with("FARGATE");
    if fargate {
        if r.gpu > 0 {
            return Err("Fargate has no GPUs".into());
        }
        if cpu > FARGATE_VCPUS {
            return Err(format!(
                "{cpu} vCPUs asked, Fargate runs at most {FARGATE_VCPUS}"
            ));
        }
        if r.memory.is_some_and(|m| m > FARGATE_MEMORY) {
            return Err(format!(
                "{} asked, Fargate runs at most 120GiB",
                crate::flow::graph::format_bytes(r.memory.unwrap_or(0))
            ));
        }
    }
    if let Some(max) = e.max_vcpus {
        if cpu > max {
            return Err(format!("{cpu} vCPUs asked, maxvCpus is {max}"));
        }
    }
    if fargate || e.instance_types.is_empty() {
        return Ok(());
    }
    if r.gpu > 0 && !e.instance_types.iter().any(|t| has_gpu(t)) {
        return Err(format!(
            "{} GPU(s) asked, its instance types ({}) have none",
            r.gpu,
            e.instance_types.join(", ")
        ));
    }
    let shapes: Option<Vec<(u32, u64)>> =
        e.instance_types.iter().map(|t| instance_shape(t)).collect();
    if let Some(shapes) = shapes {
        let max_cpu = shapes.iter().map(|s| s.0).max().unwrap_or(0);
        let max_mem = shapes.iter().map(|s| s.1).max().unwrap_or(0);
        if cpu > max_cpu {
            return Err(format!(
                "{cpu} vCPUs asked, its largest instance type has {max_cpu}"
            ));
        }
        if let Some(m) = r.memory.filter(|m| *m > max_mem) {
            return Err(format!(
                "{} asked, its largest instance type has {}",
                crate::flow::graph::format_bytes(m),
                crate::flow::graph::format_bytes(max_mem)
            ));
        }
    }
    Ok(())
}

/// What DescribeJobs said of a job that stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Stopped {
    /// `SUCCEEDED` or `FAILED`.
    pub(crate) status: String,
    /// `statusReason` (of the job, else of its last attempt).
    pub(crate) status_reason: Option<String>,
    /// `container.exitCode` (of the last attempt, else of the job).
    pub(crate) exit_code: Option<i32>,
    /// `container.reason`.
    pub(crate) reason: Option<String>,
    /// `container.logStreamName`: where CloudWatch Logs keeps the container's output.
    pub(crate) log_stream: Option<String>,
}

/// Platform failure reasons: the machine, not the task's code (retried within
/// `#[retry(platform)]`).
const PLATFORM_REASONS: &[&str] = &[
    "CannotPullContainerError",
    "ResourceInitializationError",
    "CannotStartContainerError",
    "CannotCreateContainerError",
    "CannotInspectContainerError",
    "DockerTimeoutError",
    "TaskFailedToStart",
    "SpotInterruption",
    "Spot instance",
    "Host EC2",
];

/// One line for a job that ended without a commit record, and whether the platform is to
/// blame. `memory` is the task's memory limit, for the out-of-memory message.
pub(crate) fn explain(s: &Stopped, memory: Option<u64>) -> (String, bool) {
    let status_reason = s.status_reason.as_deref().unwrap_or("");
    let reason = s.reason.as_deref().unwrap_or("");
    let both = format!("{status_reason} {reason}");
    let limit = memory.map(|m| format!(" of {}", crate::flow::graph::format_bytes(m)));
    if reason.starts_with("OutOfMemoryError") || status_reason.starts_with("OutOfMemoryError") {
        let what = if reason.is_empty() {
            status_reason
        } else {
            reason
        };
        return (
            format!(
                "out of memory: AWS Batch killed the container at its memory limit{} ({what})",
                limit.unwrap_or_default()
            ),
            false,
        );
    }
    if status_reason.contains("attempt duration exceeded timeout") {
        return (
            format!("timed out: AWS Batch's attempt duration limit was reached ({status_reason})"),
            false,
        );
    }
    if let Some(p) = PLATFORM_REASONS.iter().find(|p| both.contains(*p)) {
        let what = if status_reason.contains(p) {
            status_reason
        } else {
            reason
        };
        let head = if p.starts_with("Host") || p.starts_with("Spot") {
            "the host went away"
        } else {
            "the container could not start"
        };
        return (format!("{head}: {}", what.trim()), true);
    }
    if status_reason.starts_with("flowlib:") {
        return (format!("terminated by flowlib ({status_reason})"), false);
    }
    match s.exit_code {
        Some(crate::exec::entry::NO_BINARY_EXIT) => (
            format!(
                "the container could not get the flow binary or its task spec (exit {}){}",
                crate::exec::entry::NO_BINARY_EXIT,
                log_hint(s)
            ),
            false,
        ),
        Some(0) => (
            "the container exited 0 but the task recorded no result".to_string(),
            false,
        ),
        Some(c) if c > 128 && c < 160 => {
            let sig = c - 128;
            let terminated =
                if status_reason.is_empty() || status_reason.contains("Essential container") {
                    String::new()
                } else {
                    format!("; {status_reason}")
                };
            (
                format!(
                    "the task process was killed by signal {sig} ({}){terminated}",
                    crate::exec::child::signal_name(sig)
                ),
                false,
            )
        }
        Some(c) => (
            format!("the task process exited with code {c} and recorded no result"),
            false,
        ),
        None if !status_reason.is_empty() => (
            format!("the job ended {}: {status_reason}", s.status),
            false,
        ),
        None => (
            format!("the job ended {} with no exit code or reason", s.status),
            false,
        ),
    }
}

fn log_hint(s: &Stopped) -> String {
    match &s.log_stream {
        Some(l) => format!("; its output is in CloudWatch Logs, stream {l}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stopped(reason: Option<&str>, status_reason: Option<&str>, exit: Option<i32>) -> Stopped {
        Stopped {
            status: "FAILED".into(),
            status_reason: status_reason.map(str::to_string),
            exit_code: exit,
            reason: reason.map(str::to_string),
            log_stream: None,
        }
    }

    #[test]
    fn job_ids_of_array_children_parse_and_print_as_batch_names_them() {
        let c = JobId::parse("4c1b-9e:17");
        assert_eq!(c.job, "4c1b-9e");
        assert_eq!(c.index, Some(17));
        assert_eq!(c.to_string(), "4c1b-9e:17");
        let j = JobId::parse("4c1b-9e");
        assert_eq!(j.index, None);
        assert_eq!(j.to_string(), "4c1b-9e");
    }

    #[test]
    fn job_names_keep_step_and_attempt_within_128_allowed_characters() {
        assert_eq!(
            job_name("Remote", "1701-3", "work", 2),
            "Remote-1701-3-work-a2"
        );
        let long = job_name("F", &"r.u/n".repeat(60), "train", 0);
        assert!(long.len() <= 128, "{long}");
        assert!(long.ends_with("-train-a0"), "{long}");
        assert!(long
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn resources_become_vcpu_memory_mib_and_gpu_requirements() {
        let r = Resources {
            cpu: 2,
            memory: Some((64 << 20) + 1),
            gpu: 1,
        };
        assert_eq!(
            requirements(&r),
            vec![
                ("VCPU", "2".into()),
                ("MEMORY", "65".into()),
                ("GPU", "1".into())
            ]
        );
        let r = Resources {
            cpu: 0,
            memory: None,
            gpu: 0,
        };
        assert_eq!(requirements(&r), vec![("VCPU", "1".into())]);
        assert_eq!(attempt_duration(Some(3_000)), Some(60));
        assert_eq!(attempt_duration(Some(7_200_500)), Some(7201));
        assert_eq!(attempt_duration(None), None);
    }

    #[test]
    fn a_request_no_compute_environment_can_place_is_named() {
        let ce = Capacity {
            name: "ce".into(),
            kind: "EC2".into(),
            max_vcpus: Some(16),
            instance_types: vec!["m5.xlarge".into()],
        };
        let ok = Resources {
            cpu: 4,
            memory: Some(8 << 30),
            gpu: 0,
        };
        assert_eq!(misfit(&ok, std::slice::from_ref(&ce)), None);
        let big = Resources {
            cpu: 4,
            memory: Some(64 << 30),
            gpu: 0,
        };
        let why = misfit(&big, std::slice::from_ref(&ce)).unwrap();
        assert!(
            why.contains("64GiB asked, its largest instance type has 16GiB"),
            "{why}"
        );
        let gpu = Resources {
            cpu: 1,
            memory: None,
            gpu: 1,
        };
        assert!(misfit(&gpu, std::slice::from_ref(&ce))
            .unwrap()
            .contains("have none"));
        let many = Resources {
            cpu: 32,
            memory: None,
            gpu: 0,
        };
        assert!(misfit(&many, std::slice::from_ref(&ce))
            .unwrap()
            .contains("maxvCpus is 16"));
        // One environment that fits is enough; `optimal` is not second-guessed.
        let opt = Capacity {
            instance_types: vec!["optimal".into()],
            max_vcpus: Some(256),
            ..ce.clone()
        };
        assert_eq!(misfit(&big, &[ce, opt]), None);
        let fargate = Capacity {
            name: "f".into(),
            kind: "FARGATE".into(),
            max_vcpus: Some(64),
            instance_types: vec![],
        };
        assert!(misfit(&gpu, &[fargate])
            .unwrap()
            .contains("Fargate has no GPUs"));
    }

    #[test]
    fn every_way_a_batch_job_dies_is_one_line() {
        let (m, p) = explain(
            &stopped(
                Some("OutOfMemoryError: Container killed due to memory usage"),
                Some("Essential container in task exited"),
                Some(137),
            ),
            Some(64 << 20),
        );
        assert_eq!(m, "out of memory: AWS Batch killed the container at its memory limit of 64MiB (OutOfMemoryError: Container killed due to memory usage)");
        assert!(!p);
        let (m, p) = explain(
            &stopped(None, Some("Job attempt duration exceeded timeout"), None),
            None,
        );
        assert!(
            m.starts_with("timed out: AWS Batch's attempt duration limit"),
            "{m}"
        );
        assert!(!p);
        let (m, p) = explain(
            &stopped(None, Some("Host EC2 (instance i-0abc) terminated."), None),
            None,
        );
        assert_eq!(
            m,
            "the host went away: Host EC2 (instance i-0abc) terminated."
        );
        assert!(p);
        let (m, p) = explain(
            &stopped(
                Some("CannotPullContainerError: pull access denied"),
                Some("Task failed to start"),
                None,
            ),
            None,
        );
        assert_eq!(
            m,
            "the container could not start: CannotPullContainerError: pull access denied"
        );
        assert!(p);
        let (m, p) = explain(
            &stopped(
                None,
                Some("ResourceInitializationError: unable to pull secrets"),
                None,
            ),
            None,
        );
        assert!(m.contains("ResourceInitializationError"), "{m}");
        assert!(p);
        let (m, _) = explain(
            &stopped(None, Some("Essential container in task exited"), Some(139)),
            None,
        );
        assert_eq!(
            m,
            "the task process was killed by signal 11 (SIGSEGV: segmentation fault)"
        );
        let (m, _) = explain(
            &stopped(None, Some("Essential container in task exited"), Some(3)),
            None,
        );
        assert_eq!(
            m,
            "the task process exited with code 3 and recorded no result"
        );
        let (m, _) = explain(&stopped(None, Some("Terminated by ops"), None), None);
        assert_eq!(m, "the job ended FAILED: Terminated by ops");
        let (m, p) = explain(&stopped(None, None, Some(97)), None);
        assert!(m.contains("could not get the flow binary"), "{m}");
        assert!(!p);
    }
}
