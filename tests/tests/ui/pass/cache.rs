use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Train {
    rates: Vec<f64>,
    names: Vec<String>,
    score: f64,
    best: f64,
}

#[flow]
impl Train {
    #[step(start, next = fit, foreach = rates)]
    #[cache]
    fn start(&mut self) -> Result<()> {
        self.rates = vec![0.1, 0.2];
        Ok(())
    }

    #[step(next = pick)]
    #[cache(version = "2")]
    #[retry(times = 2)]
    #[resources(cpu = 1)]
    fn fit(&mut self, rate: &f64, ctx: &mut Ctx) -> Result<()> {
        self.score = rate * ctx.index().unwrap_or(0) as f64;
        Ok(())
    }

    #[step(join, next = names)]
    #[cache(version = 3)]
    fn pick(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.best = inputs.iter().map(|i| i.score).fold(0.0, f64::max);
        Ok(())
    }

    #[step(next = label, foreach = names)]
    fn names(&mut self) -> Result<()> {
        self.names = vec!["a".into()];
        Ok(())
    }

    #[step(next = done)]
    #[cache]
    fn label(&mut self, name: &str) -> Result<()> {
        self.score = name.len() as f64;
        Ok(())
    }

    #[step(join, next = end)]
    fn done(&mut self, _inputs: Inputs<Self>) -> Result<()> {
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
