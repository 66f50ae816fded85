//! A step may return `()`, the prelude's `Result<()>`, or a `Result` with any error type
//! convertible into a step error, such as `std::io::Error`.

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Returns {
    x: u32,
}

#[flow]
impl Returns {
    #[step(start, next = io)]
    fn start(&mut self) {
        self.x = 1;
    }

    #[step(next = end)]
    fn io(&mut self) -> std::result::Result<(), std::io::Error> {
        std::fs::metadata(".").map(|_| ())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let _ = flowlib::main::<Returns>;
}
