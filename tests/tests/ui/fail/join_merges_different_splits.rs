use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Train {
    rates: Vec<f64>,
    score: f64,
}

#[flow]
impl Train {
    #[step(start, next = [fan, plain])]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = fit, foreach = rates)]
    fn fan(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = merge)]
    fn fit(&mut self, rate: &f64) -> Result<()> {
        self.score = *rate;
        Ok(())
    }

    #[step(next = merge)]
    fn plain(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(join, next = end)]
    fn merge(&mut self, inputs: Inputs<Self>) -> Result<()> {
        let _ = inputs;
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
