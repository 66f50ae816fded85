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
    #[retry(times = 2, delay = "1s", platform = 5)]
    #[timeout("2h")]
    #[slurm(partition = "gpu", account = "ml", qos = "high", constraint = "a100", time = "3h", extra = ["--exclusive"], max_parallel = 8)]
    fn fit(&mut self, rate: &f64) -> Result<()> {
        self.score = *rate;
        Ok(())
    }

    #[step(join, next = end)]
    #[slurm]
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
    let fit = g.step("fit").unwrap();
    let s = fit.slurm.unwrap();
    assert_eq!(s.partition, Some("gpu"));
    assert_eq!(s.account, Some("ml"));
    assert_eq!(s.qos, Some("high"));
    assert_eq!(s.constraint, Some("a100"));
    assert_eq!(s.time_ms, Some(3 * 3_600_000));
    assert_eq!(s.extra, &["--exclusive"]);
    assert_eq!(s.max_parallel, Some(8));
    assert_eq!(fit.platform_retries(), 5);
    assert_eq!(g.step("pick").unwrap().slurm, Some(flowlib::SlurmOptions::default()));
    assert_eq!(g.step("start").unwrap().platform_retries(), flowlib::DEFAULT_PLATFORM_RETRIES);
}
