//! A foreach over a field, one task per item, closed by a join.

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Fan {
    rates: Vec<f64>,
    score: f64,
    best: Option<f64>,
}

#[flow]
impl Fan {
    #[step(start, next = fit, foreach = rates)]
    fn start(&mut self) -> Result<()> {
        self.rates = vec![0.1, 0.01];
        Ok(())
    }

    #[step(next = pick)]
    fn fit(&mut self, rate: &f64) -> Result<()> {
        self.score = 1.0 - rate;
        Ok(())
    }

    #[step(join, next = end)]
    fn pick(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.best = inputs.iter().map(|i| i.score).reduce(f64::max);
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let _ = flowlib::main::<Fan>;
}
