//! A static branch: two statistics computed in parallel, then joined.
//!
//! ```text
//! cargo run --example branch -- run --n 1000
//! ```

use flowlib::prelude::*;

/// Compute the sum and the sum of squares of 1..=n in parallel branches.
#[derive(FlowState, Default, Serialize, Deserialize)]
struct Branch {
    /// How many numbers.
    #[param(default = 100u64, help = "sum the numbers 1..=n")]
    n: u64,
    numbers: Vec<u64>,
    sum: u64,
    sum_squares: u64,
    mean: f64,
    variance: f64,
}

#[flow]
impl Branch {
    /// Make the numbers, then split into two branches.
    #[step(start, next = [sum, squares])]
    fn start(&mut self) -> Result<()> {
        self.numbers = (1..=self.n).collect();
        Ok(())
    }

    /// First arm: the plain sum.
    #[step(next = stats)]
    fn sum(&mut self) -> Result<()> {
        self.sum = self.numbers.iter().sum();
        Ok(())
    }

    /// Second arm: the sum of squares.
    #[step(next = stats)]
    #[resources(cpu = 1, memory = "64MiB")]
    fn squares(&mut self) -> Result<()> {
        self.sum_squares = self.numbers.iter().map(|x| x * x).sum();
        Ok(())
    }

    /// Join the arms: each input carries its own artifacts.
    #[step(join, next = end)]
    fn stats(&mut self, inputs: Inputs<Self>) -> Result<()> {
        let sum = inputs.from_step("sum").ok_or("missing the `sum` arm")?.sum;
        let squares = inputs
            .from_step("squares")
            .ok_or("missing the `squares` arm")?
            .sum_squares;
        let n = self.n as f64;
        self.sum = sum;
        self.sum_squares = squares;
        self.mean = sum as f64 / n;
        self.variance = squares as f64 / n - self.mean * self.mean;
        Ok(())
    }

    /// Report.
    #[step(end)]
    fn end(&mut self) -> Result<()> {
        println!("n={} mean={} variance={}", self.n, self.mean, self.variance);
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    flowlib::main::<Branch>()
}
