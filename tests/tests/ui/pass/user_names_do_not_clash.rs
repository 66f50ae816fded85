//! User types and functions named like the items the macros generate internally
//! (`Artifact`, `ForeachField`, `foreach`) keep their meaning in the user's tokens.

use flowlib::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Artifact {
    bytes: Vec<u8>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct ForeachField {
    n: u32,
}

fn foreach() -> Vec<ForeachField> {
    vec![ForeachField { n: 1 }]
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Clash {
    #[param(default = 3u32)]
    count: u32,
    artifact: Artifact,
    items: Vec<ForeachField>,
    total: u32,
}

#[flow]
impl Clash {
    #[step(start, next = each, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = foreach();
        self.artifact = Artifact::default();
        Ok(())
    }

    #[step(next = join)]
    fn each(&mut self, item: &ForeachField) -> Result<()> {
        self.total = item.n + self.artifact.bytes.len() as u32;
        Ok(())
    }

    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.total = inputs.iter().map(|i| i.total).sum();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let _ = flowlib::main::<Clash>;
}
