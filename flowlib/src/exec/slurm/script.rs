//! The job script and `sbatch` arguments of a step's tasks.
//!
//! The script is generated, given to `sbatch` on stdin, and holds no secret: only the spec
//! digests, the binary's path and digest, and where to fetch the binary from when that path
//! is not visible on the compute node. Variable *values* never appear in it or in sbatch's
//! arguments: `--export=NONE,<names>` names them, their values sit in sbatch's own
//! environment.

use std::path::{Path, PathBuf};

use crate::exec::package::Package;
use crate::flow::Step;
use crate::store::{Datastore, Digest, DATASTORE_ENV};

/// The job name prefix of a run's jobs (`cancel <run>` finds them by it).
pub(crate) fn job_name_prefix(flow: &str, run: &str) -> String {
    format!("fl-{flow}-{run}-")
}

/// `sbatch` arguments from a step's resources and `#[slurm]` options.
pub(crate) fn resource_args(s: &Step) -> Vec<String> {
    let r = s.resources;
    let mut a = vec![format!("--cpus-per-task={}", r.cpu.max(1))];
    if let Some(m) = r.memory {
        // Slurm counts memory in MiB (its `M`); round up so the task gets at least its ask.
        a.push(format!("--mem={}M", m.div_ceil(1 << 20).max(1)));
    }
    if r.gpu > 0 {
        a.push(format!("--gres=gpu:{}", r.gpu));
    }
    let o = s.slurm.unwrap_or_default();
    // A step's own partition, else the run's default (`FLOWLIB_SLURM_PARTITION`), else the
    // cluster's default partition.
    let default_partition = std::env::var("FLOWLIB_SLURM_PARTITION")
        .ok()
        .filter(|p| !p.trim().is_empty());
    if let Some(p) = o.partition.map(str::to_string).or(default_partition) {
        a.push(format!("--partition={p}"));
    }
    if let Some(v) = o.account {
        a.push(format!("--account={v}"));
    }
    if let Some(v) = o.qos {
        a.push(format!("--qos={v}"));
    }
    if let Some(v) = o.constraint {
        a.push(format!("--constraint={v}"));
    }
    // The time limit: `#[slurm(time)]`, else the step's `#[timeout]` (flowlib fences at the
    // timeout itself; Slurm's limit is the backstop, in whole minutes, at least one).
    if let Some(ms) = o.time_ms.or(s.timeout_ms) {
        let minutes = ms.div_ceil(60_000).max(1);
        a.push(format!("--time={minutes}"));
    }
    a.extend(o.extra.iter().map(|s| s.to_string()));
    a
}

/// Environment variables a task needs, by name, when set here: the datastore's location
/// and credentials of every backend, and the runtime's own knobs.
const EXPORT_PREFIXES: &[&str] = &[
    "FLOWLIB_",
    "AWS_",
    "GOOGLE_",
    "GCS_",
    "AZURE_",
    "AZURITE_",
    "RUST_LOG",
    "RUST_BACKTRACE",
    "SSL_CERT_",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
];

/// One job (or job array) of a step.
pub(crate) struct Job<'a> {
    pub(crate) flow: &'a str,
    pub(crate) run: &'a str,
    pub(crate) step: &'a Step,
    pub(crate) ds: &'a Datastore,
    pub(crate) package: &'a Package,
    pub(crate) specs: &'a [Digest],
    pub(crate) output_dir: &'a Path,
    /// A job array with this throttle (`None` inside: no throttle); `None`: one job.
    pub(crate) array: Option<Option<usize>>,
}

impl Job<'_> {
    /// Where Slurm writes the job's (array task's) own output.
    pub(crate) fn output_file(&self, job: u64, index: Option<u32>) -> PathBuf {
        let name = match index {
            Some(i) => format!("{}-{job}_{i}.out", self.step.name),
            None => format!("{}-{job}.out", self.step.name),
        };
        self.output_dir.join(name)
    }

    /// (sbatch arguments, sbatch's environment, the script).
    pub(crate) fn render(&self) -> (Vec<String>, Vec<(String, String)>, String) {
        let mut args = vec![
            format!(
                "--job-name={}{}",
                job_name_prefix(self.flow, self.run),
                self.step.name
            ),
            "--no-requeue".to_string(),
            "--nodes=1".to_string(),
            "--ntasks=1".to_string(),
            "--kill-on-invalid-dep=yes".to_string(),
        ];
        let out = match self.array {
            Some(_) => format!("{}-%A_%a.out", self.step.name),
            None => format!("{}-%j.out", self.step.name),
        };
        args.push(format!("--output={}", self.output_dir.join(out).display()));
        if let Some(throttle) = self.array {
            let mut spec = format!("--array=0-{}", self.specs.len() - 1);
            if let Some(p) = throttle {
                spec.push_str(&format!("%{}", p.max(1)));
            }
            args.push(spec);
        }
        args.extend(resource_args(self.step));

        // More names a user's tasks need: `FLOWLIB_SLURM_EXPORT=VAR1,VAR2`.
        let extra: Vec<String> = std::env::var("FLOWLIB_SLURM_EXPORT")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| EXPORT_PREFIXES.iter().any(|p| k.starts_with(p)) || extra.contains(k))
            .filter(|(k, _)| k != DATASTORE_ENV)
            .collect();
        env.push((DATASTORE_ENV.to_string(), self.ds.url().to_string()));
        env.sort();
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        args.push(format!("--export=NONE,{}", names.join(",")));
        (args, env, self.script())
    }

    fn script(&self) -> String {
        let exe = std::env::var("FLOWLIB_SLURM_EXE")
            .unwrap_or_else(|_| self.package.exe.display().to_string());
        let meta = std::fs::metadata(&self.package.exe).ok();
        let stamp = meta
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                format!("{}:{}", m.size(), m.mtime())
            })
            .unwrap_or_default();
        let hex = self.package.digest.hex();
        let fetch = self
            .package
            .store_file(self.ds)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let specs = self
            .specs
            .iter()
            .map(|d| d.hex())
            .collect::<Vec<_>>()
            .join("\n  ");
        format!(
            r#"#!/bin/bash
# flowlib task job (generated; it holds no secrets)
# flow {flow}, run {run}, step {step}
set -u
specs=(
  {specs}
)
spec=${{specs[${{SLURM_ARRAY_TASK_ID:-0}}]}}
exe={exe}
digest={hex}
# The run's binary, where the driver sees it; when this node sees another file (or none)
# there, the binary is fetched from the datastore by digest and verified.
if [ "$(stat -c %s:%Y "$exe" 2>/dev/null)" != "{stamp}" ]; then
  fetched="${{TMPDIR:-/tmp}}/flowlib-exe-$digest"
  if ! echo "$digest  $fetched" | sha256sum -c --status 2>/dev/null; then
    src={fetch}
    if [ -z "$src" ] || [ ! -r "$src" ]; then
      echo "flowlib: the flow binary $exe is not visible on $(hostname) and the datastore is not a shared directory: put the binary on a shared filesystem (or set FLOWLIB_SLURM_EXE to its path on the nodes)" >&2
      exit 97
    fi
    tmp="$fetched.$$"
    cp "$src" "$tmp" && chmod +x "$tmp" || {{ echo "flowlib: cannot copy the flow binary from $src" >&2; exit 97; }}
    if ! echo "$digest  $tmp" | sha256sum -c --status; then
      echo "flowlib: the binary at $src does not hash to sha256:$digest" >&2
      rm -f "$tmp"; exit 97
    fi
    mv -f "$tmp" "$fetched"
  fi
  exe=$fetched
fi
exec "$exe" task-exec --spec "sha256:$spec"
"#,
            flow = self.flow,
            run = self.run,
            step = self.step.name,
            exe = shell_quote(&exe),
            fetch = shell_quote(&fetch),
        )
    }
}

/// `'text'` for bash, with `'` escaped.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
