//! A long training loop that checkpoints every epoch: kill it, resume it, and it continues
//! from the last saved epoch instead of starting over.
//!
//! ```text
//! cargo run --example checkpointed -- run --epochs 50     # press Ctrl-C (or kill -9) half way
//! cargo run --example checkpointed -- resume              # continues from the last epoch
//! cargo run --example checkpointed -- dump latest/train history
//! ```
//!
//! `#[retry]` makes the same work survive a flaky failure inside one run: the retry loads
//! the checkpoint the failed attempt saved. Set `FAIL_AT_EPOCH=n` to simulate one.

use std::time::Duration;

use flowlib::prelude::*;

/// What the training step saves after every epoch.
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
struct Progress {
    epoch: u32,
    weights: Vec<f64>,
    history: Vec<f64>,
}

/// Fit a tiny linear model for many epochs, one checkpoint per epoch.
#[derive(FlowState, Default, Serialize, Deserialize)]
struct Checkpointed {
    /// Total epochs.
    #[param(default = 30u32, help = "epochs to train")]
    epochs: u32,
    /// Milliseconds of pretend work per epoch.
    #[param(default = 100u64, help = "pretend work per epoch, in ms")]
    epoch_ms: u64,
    data: Vec<(f64, f64)>,
    weights: Vec<f64>,
    history: Vec<f64>,
    started_at_epoch: u32,
}

#[flow]
impl Checkpointed {
    /// Make the data.
    #[step(start, next = train)]
    fn start(&mut self) -> Result<()> {
        self.data = (0..200)
            .map(|i| (i as f64 / 200.0, 0.5 + 2.0 * i as f64 / 200.0))
            .collect();
        Ok(())
    }

    /// Gradient descent with a checkpoint after every epoch.
    #[step(next = end)]
    #[checkpoint]
    #[retry(times = 2, delay = "100ms")]
    fn train(&mut self, ctx: &mut Ctx) -> Result<()> {
        let mut p: Progress = ctx.checkpoint().load()?.unwrap_or_else(|| Progress {
            weights: vec![0.0, 0.0],
            ..Progress::default()
        });
        self.started_at_epoch = p.epoch;
        if p.epoch > 0 {
            eprintln!(
                "[{}] continuing from the checkpoint of epoch {}",
                ctx.task_id(),
                p.epoch
            );
        }
        let fail_at: Option<u32> = std::env::var("FAIL_AT_EPOCH")
            .ok()
            .and_then(|v| v.parse().ok());
        while p.epoch < self.epochs {
            if ctx.attempt() == 0 && fail_at == Some(p.epoch) {
                return Err(format!("simulated failure at epoch {}", p.epoch).into());
            }
            let (mut g0, mut g1) = (0.0, 0.0);
            for (x, y) in &self.data {
                let err = p.weights[0] + p.weights[1] * x - y;
                g0 += err;
                g1 += err * x;
            }
            let n = self.data.len() as f64;
            p.weights[0] -= 0.5 * g0 / n;
            p.weights[1] -= 0.5 * g1 / n;
            let loss: f64 = self
                .data
                .iter()
                .map(|(x, y)| (p.weights[0] + p.weights[1] * x - y).powi(2))
                .sum::<f64>()
                / n;
            p.history.push(loss);
            p.epoch += 1;
            std::thread::sleep(Duration::from_millis(self.epoch_ms));
            ctx.checkpoint().save(&p)?;
            eprintln!(
                "[{}] epoch {}/{}: loss {loss:.6}",
                ctx.task_id(),
                p.epoch,
                self.epochs
            );
        }
        self.weights = p.weights;
        self.history = p.history;
        Ok(())
    }

    /// Report.
    #[step(end)]
    fn end(&mut self) -> Result<()> {
        println!(
            "y = {:.3} + {:.3}x after {} epochs (this run started at epoch {})",
            self.weights[0],
            self.weights[1],
            self.history.len(),
            self.started_at_epoch
        );
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    flowlib::main::<Checkpointed>()
}
