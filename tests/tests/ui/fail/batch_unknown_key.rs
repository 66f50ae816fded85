use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Train {
    score: f64,
}

#[flow]
impl Train {
    #[step(start, next = fit)]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = end)]
    #[batch(partition = "gpu", priority = 2)]
    fn fit(&mut self) -> Result<()> {
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
