//! A foreach inside a foreach: the inner join closes first, then the outer one.

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Grid {
    rates: Vec<f64>,
    depths: Vec<u32>,
    score: f64,
    best_per_rate: f64,
    best: f64,
}

#[flow]
impl Grid {
    #[step(start, next = per_rate, foreach = rates)]
    fn start(&mut self) -> Result<()> {
        self.rates = vec![0.1, 0.01];
        Ok(())
    }

    #[step(next = fit, foreach = depths)]
    fn per_rate(&mut self, rate: &f64) -> Result<()> {
        self.score = *rate;
        self.depths = vec![1, 2, 3];
        Ok(())
    }

    #[step(next = join_depths)]
    fn fit(&mut self, depth: &u32) -> Result<()> {
        self.score *= f64::from(*depth);
        Ok(())
    }

    #[step(join, next = join_rates)]
    fn join_depths(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.best_per_rate = inputs.iter().map(|i| i.score).fold(f64::MIN, f64::max);
        Ok(())
    }

    #[step(join, next = end)]
    fn join_rates(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.best = inputs
            .iter()
            .map(|i| i.best_per_rate)
            .fold(f64::MIN, f64::max);
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let _ = flowlib::main::<Grid>;
}
