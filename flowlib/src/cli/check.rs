//! `check`: the flow is valid and this machine can run every step.

use std::process::ExitCode;

use clap::Command;

use crate::error::Result;
use crate::exec::Limits;
use crate::flow::graph::format_bytes;
use crate::flow::Flow;
use crate::run::{self as runtime, RunOptions};

pub(super) fn command() -> Command {
    Command::new("check").about("Check the flow and that this machine can run every step")
}

pub(super) fn exec<F: Flow>() -> Result<ExitCode> {
    let g = F::graph();
    let limits = Limits::detect(None, None);
    let executor = runtime::prepare::<F>(&RunOptions {
        limits: limits.clone(),
        ..RunOptions::default()
    })?;
    println!(
        "flow {}: {} steps, {} artifacts, graph {}: ok (executor {}; this machine: {} CPUs, {}, {} GPUs; memory limits of task processes: {})",
        F::NAME,
        g.steps().len(),
        F::FIELDS.len(),
        g.digest(),
        executor.name(),
        limits.max_workers,
        format_bytes(limits.max_memory),
        limits.gpus,
        crate::exec::limit::memory_mode().describe()
    );
    Ok(ExitCode::SUCCESS)
}
