use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Train {
    score: f64,
}

#[flow]
impl Train {
    #[step(start, next = fit)]
    #[cache(versoin = "2")]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = score)]
    #[cache(version = 2.5)]
    fn fit(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = end)]
    #[cache(version = "")]
    fn score(&mut self) -> Result<()> {
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
