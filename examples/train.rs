//! Train one model per learning rate in parallel (foreach), keep the best (join).
//!
//! ```text
//! cargo run --example train -- run
//! cargo run --example train -- run --split 0.7 --epochs 200
//! cargo run --example train -- show --format mermaid
//! cargo run --example train -- dump latest/pick best
//! cargo run --example train -- cache list
//! ```
//!
//! The "model" is a least-squares line fitted by gradient descent on synthetic data, so
//! the example runs in milliseconds but behaves like the real thing: each learning rate
//! converges (or not) to a different validation loss.

use flowlib::prelude::*;

/// Fit y = a·x + b with gradient descent for several learning rates; keep the best.
#[derive(FlowState, Default, Serialize, Deserialize)]
struct Train {
    /// Fraction of the rows used for training; the rest validates.
    #[param(default = 0.8, help = "fraction of rows used for training")]
    split: f64,
    /// Gradient descent epochs per model.
    #[param(default = 100u32, help = "epochs per model")]
    epochs: u32,
    /// The data set: (x, y) rows.
    rows: Vec<(f64, f64)>,
    /// Learning rates to try: one `fit` task each.
    rates: Vec<f64>,
    /// Fitted (slope, intercept) of one `fit` task.
    model: (f64, f64),
    /// Validation loss of one `fit` task.
    score: f64,
    /// Best (rate, validation loss, model) over all rates.
    best: Option<(f64, f64, (f64, f64))>,
}

fn loss(rows: &[(f64, f64)], (a, b): (f64, f64)) -> f64 {
    rows.iter()
        .map(|(x, y)| (a * x + b - y).powi(2))
        .sum::<f64>()
        / rows.len().max(1) as f64
}

#[flow]
impl Train {
    /// Generate data (y = 3x + 2 plus deterministic noise) and the rates to try.
    #[step(start, next = fit, foreach = rates)]
    fn start(&mut self) -> Result<()> {
        if !(0.0..1.0).contains(&self.split) || self.split == 0.0 {
            return Err(format!("--split must be in (0, 1), got {}", self.split).into());
        }
        self.rows = (0..1000)
            .map(|i| {
                let x = i as f64 / 1000.0;
                let noise = ((i * 7919) % 101) as f64 / 1000.0 - 0.05;
                (x, 3.0 * x + 2.0 + noise)
            })
            .collect();
        self.rates = vec![0.5, 0.1, 0.01, 0.001];
        Ok(())
    }

    /// Fit one model per learning rate. Deterministic and the expensive part, so cached:
    /// a second run with the same data, split and epochs takes every fit from the first.
    #[step(next = pick)]
    #[cache]
    #[resources(cpu = 1, memory = "256MiB")]
    #[retry(times = 2, delay = "100ms")]
    fn fit(&mut self, rate: &f64, ctx: &mut Ctx) -> Result<()> {
        let cut = (self.rows.len() as f64 * self.split) as usize;
        let (train, valid) = self.rows.split_at(cut);
        let (mut a, mut b) = (0.0, 0.0);
        for epoch in 0..self.epochs {
            let n = train.len() as f64;
            let (mut ga, mut gb, mut sq) = (0.0, 0.0, 0.0);
            for (x, y) in train {
                let err = a * x + b - y;
                ga += 2.0 * err * x / n;
                gb += 2.0 * err / n;
                sq += err * err / n;
            }
            ctx.log_metric_at("train_loss", sq, u64::from(epoch));
            a -= rate * ga;
            b -= rate * gb;
        }
        self.model = (a, b);
        self.score = loss(valid, self.model);
        ctx.log_metric("val_loss", self.score);
        // shown in this task's section of `report <run>`
        ctx.card().markdown(format!(
            "**rate {rate}**: y = {a:.3}x + {b:.3}, validation loss {:.5}",
            self.score
        ));
        println!(
            "[{}] rate {rate}: validation loss {:.5}",
            ctx.task_id(),
            self.score
        );
        Ok(())
    }

    /// Keep the model with the lowest validation loss.
    #[step(join, next = end)]
    fn pick(&mut self, inputs: Inputs<Self>, ctx: &mut Ctx) -> Result<()> {
        ctx.card().markdown("## Candidates").table(
            ["rate", "validation loss"],
            inputs.iter().map(|i| {
                [
                    self.rates[i.index().unwrap_or(0)].to_string(),
                    format!("{:.5}", i.score),
                ]
            }),
        );
        self.best = inputs
            .iter()
            .map(|i| (self.rates[i.index().unwrap_or(0)], i.score, i.model))
            .filter(|(_, s, _)| s.is_finite())
            .min_by(|x, y| x.1.total_cmp(&y.1));
        Ok(())
    }

    /// Report the winner.
    #[step(end)]
    fn end(&mut self) -> Result<()> {
        match self.best {
            Some((rate, score, (a, b))) => {
                println!("best rate {rate}: y = {a:.3}x + {b:.3} (validation loss {score:.5})")
            }
            None => println!("no model converged"),
        }
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    flowlib::main::<Train>()
}
