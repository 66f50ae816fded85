//! Several unrelated mistakes: every one is reported in the same compilation.

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Train {
    rates: Vec<f64>,
    score: f64,
}

#[flow]
impl Train {
    #[step(start, next = fit, foreach = ratse)]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = pik)]
    #[resources(cpu = 2, memory = "4GB")]
    #[retry(times = 3, dealy = "1s")]
    fn fit(&mut self, rate: &f64) -> Result<()> {
        self.score = *rate;
        Ok(())
    }

    #[step(join, next = end)]
    fn pick(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(end)]
    #[timeout("1 fortnight")]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let _ = flowlib::main::<Train>;
}
