//! `show`: the graph as text, Mermaid, Graphviz dot, or JSON.

use std::process::ExitCode;

use clap::{Arg, ArgMatches, Command};

use crate::error::Result;
use crate::flow::Flow;

pub(super) fn command() -> Command {
    Command::new("show").about("Show the graph").arg(
        Arg::new("format")
            .long("format")
            .value_parser(["text", "mermaid", "dot", "json"])
            .default_value("text")
            .help("Output format"),
    )
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
        _ => g.to_text(),
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
