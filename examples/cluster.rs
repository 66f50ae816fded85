//! Estimate π by Monte Carlo in parallel chunks. The heavy step, `simulate`, is marked for
//! Slurm: it runs on the cluster when you ask for it and, unchanged, on this machine when
//! you do not.
//!
//! ```text
//! cargo run --example cluster -- run                          # every step on threads, here
//! cargo run --example cluster -- run --with processes         # a child process per task
//! cargo run --example cluster -- run --with slurm:simulate    # the chunks as one Slurm job array
//! cargo run --example cluster -- show --with slurm:simulate   # where each step will run
//! cargo run --example cluster -- logs latest/simulate/3       # what chunk 3 printed
//! ```

use flowlib::prelude::*;

/// π from random points in the unit square, one chunk of points per task.
#[derive(FlowState, Default, Serialize, Deserialize)]
struct Cluster {
    /// Number of chunks (tasks of `simulate`).
    #[param(default = 8u32, help = "number of chunks")]
    chunks: u32,
    /// Points per chunk.
    #[param(default = 2_000_000u64, help = "points per chunk")]
    points: u64,
    /// The chunk seeds.
    seeds: Vec<u64>,
    /// Points of one chunk inside the quarter circle.
    inside: u64,
    /// The estimate.
    pi: f64,
}

#[flow]
impl Cluster {
    /// One seed per chunk.
    #[step(start, next = simulate, foreach = seeds)]
    fn start(&mut self) -> Result<()> {
        self.seeds = (0..u64::from(self.chunks))
            .map(|i| 0x9E37_79B9 ^ (i << 17))
            .collect();
        Ok(())
    }

    /// Count the points inside the quarter circle (xorshift random numbers).
    #[step(next = combine)]
    #[resources(cpu = 1, memory = "256MiB")]
    #[retry(times = 2, delay = "5s", platform = 5)]
    #[timeout("20m")]
    #[slurm(time = "30m", max_parallel = 4)]
    fn simulate(&mut self, seed: &u64, ctx: &mut Ctx) -> Result<()> {
        let mut x = *seed | 1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        self.inside = (0..self.points)
            .filter(|_| {
                let (a, b) = (next(), next());
                a * a + b * b <= 1.0
            })
            .count() as u64;
        ctx.log(format_args!(
            "chunk {} on {}: {} of {} inside",
            ctx.index().unwrap_or(0),
            std::env::var("SLURMD_NODENAME").unwrap_or_else(|_| "this machine".into()),
            self.inside,
            self.points
        ));
        Ok(())
    }

    /// Combine the chunks.
    #[step(join, next = end)]
    fn combine(&mut self, inputs: Inputs<Self>) -> Result<()> {
        let inside: u64 = inputs.iter().map(|i| i.inside).sum();
        let total = self.points * inputs.len() as u64;
        self.pi = 4.0 * inside as f64 / total as f64;
        Ok(())
    }

    /// Report.
    #[step(end)]
    fn end(&mut self) -> Result<()> {
        println!("π ≈ {:.5} from {} chunks", self.pi, self.chunks);
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    flowlib::main::<Cluster>()
}
