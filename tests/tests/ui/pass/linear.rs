//! The simplest flow: start -> middle -> end.

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Linear {
    x: u32,
}

#[flow]
impl Linear {
    #[step(start, next = middle)]
    fn start(&mut self) -> Result<()> {
        self.x = 1;
        Ok(())
    }

    #[step(next = end)]
    fn middle(&mut self) -> Result<()> {
        self.x += 1;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let _ = flowlib::main::<Linear>;
}
