use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Train {
    rates: Vec<f64>,
    score: f64,
}

#[flow]
impl Train {
    #[step(start, next = fit, foreach = rates)]
    fn start(&mut self) -> Result<()> {
        self.rates = vec![0.1, 0.01];
        Ok(())
    }

    #[step(next = pick)]
    #[resources(cpu = 2, memory = "4GiB", gpu = 1)]
    #[batch(queue = "gpu-spot", job_definition = "flowlib:3", image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1")]
    fn fit(&mut self, rate: &f64) -> Result<()> {
        self.score = *rate;
        Ok(())
    }

    #[step(join, next = end)]
    #[batch]
    fn pick(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.score = inputs.iter().map(|i| i.score).fold(0.0, f64::max);
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let g = <Train as flowlib::Flow>::graph();
    let b = g.step("fit").unwrap().batch.unwrap();
    assert_eq!(b.queue, Some("gpu-spot"));
    assert_eq!(b.job_definition, Some("flowlib:3"));
    assert_eq!(
        b.image,
        Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1")
    );
    assert_eq!(g.step("pick").unwrap().batch, Some(flowlib::BatchOptions::default()));
    assert_eq!(g.step("start").unwrap().batch, None);
}
