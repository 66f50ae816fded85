use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Train {
    score: f64,
}

#[flow]
impl Train {
    #[step(start, next = a)]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = b)]
    fn a(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = [a, end])]
    fn b(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let _ = flowlib::main::<Train>;
}
