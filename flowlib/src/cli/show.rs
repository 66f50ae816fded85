//! `show`: the graph as text, Mermaid, Graphviz dot, or JSON.

use std::process::ExitCode;

use clap::{Arg, ArgMatches, Command};

use crate::error::Result;
use crate::flow::Flow;

pub(super) fn command() -> Command {
    Command::new("show")
        .about("Show the graph, and where each step runs")
        .arg(
            Arg::new("format")
                .long("format")
                .value_parser(["text", "mermaid", "dot", "json"])
                .default_value("text")
                .help("Output format"),
        )
        .arg(crate::cli::args::with_arg())
}

/// `where each step runs` lines: the executor from `--with`, with the Slurm options.
fn placement_text(g: &crate::flow::Graph, with: &crate::exec::With) -> Result<String> {
    let p = with.placement(g)?;
    let mut out = format!("\nwhere steps run (--with {}):\n", with.describe());
    let width = g.steps().iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in g.steps() {
        let exec = p.executor_of(s.index);
        let mut line = format!("  {:width$}  {exec}", s.name);
        if exec == "slurm" {
            let args = crate::exec::slurm::sbatch_args(s);
            line.push_str(&format!(" ({})", args.join(" ")));
        } else if exec == "kubernetes" {
            line.push_str(&format!(" ({})", kubernetes_text(s)));
        } else if exec == "batch" {
            #[cfg(feature = "batch")]
            line.push_str(&format!(" ({})", crate::exec::batch::placement(s)));
        } else if s.slurm.is_some() {
            line.push_str(" (has #[slurm]: on Slurm with `--with slurm`)");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// How a step's pods are asked for: image, namespace, requests, and whether a foreach goes
/// as one Indexed Job.
fn kubernetes_text(s: &crate::flow::Step) -> String {
    let k = s.kubernetes.unwrap_or_default();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let image = k
        .image
        .map(str::to_string)
        .or_else(|| env("FLOWLIB_K8S_IMAGE"))
        .unwrap_or_else(|| "no image: set #[kubernetes(image)] or FLOWLIB_K8S_IMAGE".into());
    let mut parts = vec![format!("image {image}")];
    if let Some(ns) = k
        .namespace
        .map(str::to_string)
        .or_else(|| env("FLOWLIB_K8S_NAMESPACE"))
    {
        parts.push(format!("namespace {ns}"));
    }
    let memory = s.resources.memory.unwrap_or(1 << 30);
    parts.push(format!(
        "cpu {}, memory {}{}",
        s.resources.cpu.max(1),
        crate::flow::graph::format_bytes(memory),
        if s.resources.gpu > 0 {
            format!(
                ", {} {}.com/gpu",
                s.resources.gpu,
                k.gpu_vendor.unwrap_or("nvidia")
            )
        } else {
            String::new()
        }
    ));
    if s.depth > 0 {
        parts.push("a foreach: one Indexed Job".into());
    }
    parts.join("; ")
}

pub(super) fn exec<F: Flow>(sub: &ArgMatches) -> Result<ExitCode> {
    let g = F::graph();
    let out = match sub.get_one::<String>("format").map(String::as_str) {
        Some("mermaid") => g.to_mermaid(),
        Some("dot") => g.to_dot(),
        Some("json") => {
            let mut s = serde_json::to_string_pretty(&serde_json::json!({
                "flow": g.flow(),
                "digest": g.digest().to_string(),
                "steps": g.steps(),
            }))
            .expect("graph serializes");
            s.push('\n');
            s
        }
        _ => {
            let with = crate::cli::args::with_of(sub)?;
            g.to_text() + &placement_text(g, &with)?
        }
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
