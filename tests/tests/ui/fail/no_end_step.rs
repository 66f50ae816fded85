use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Train {
    score: f64,
}

#[flow]
impl Train {
    #[step(start, next = finish)]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    #[step]
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let _ = flowlib::main::<Train>;
}
