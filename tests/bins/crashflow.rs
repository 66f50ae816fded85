//! The flow the crash tests kill: a foreach with medium artifacts, a join, a checkpointed
//! training loop and a large artifact, so SIGKILL can land in every phase of a task.
//! Each step appends `<run> <task> <attempt> [detail]` to `$CRASH_LOG`, so the tests can
//! tell which tasks really executed in which run.

use std::io::Write;
use std::time::Duration;

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Crash {
    #[param(default = 8u32, help = "foreach width")]
    n: u32,
    #[param(default = 64u64, help = "size of the big artifact in MiB")]
    big_mib: u64,
    items: Vec<u32>,
    part: Vec<u64>,
    blob: Vec<u8>,
    total: u64,
    epochs: u32,
    big: Vec<u8>,
    summary: String,
}

fn log(ctx: &Ctx, detail: &str) {
    if let Ok(path) = std::env::var("CRASH_LOG") {
        let line = format!(
            "{} {} {} {detail}\n",
            ctx.run_id(),
            ctx.task_id(),
            ctx.attempt()
        );
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open the crash log");
        f.write_all(line.as_bytes())
            .expect("append to the crash log");
    }
}

#[flow]
impl Crash {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self, ctx: &mut Ctx) -> Result<()> {
        log(ctx, "");
        self.items = (0..self.n).collect();
        Ok(())
    }

    #[step(next = gather)]
    fn work(&mut self, item: &u32, ctx: &mut Ctx) -> Result<()> {
        log(ctx, "");
        std::thread::sleep(Duration::from_millis(25));
        let i = u64::from(*item);
        self.part = (0..512).map(|k| (i + 1) * 1_000 + k).collect();
        self.blob = (0..(1 << 20))
            .map(|k: u32| (k.wrapping_mul(31) ^ *item) as u8)
            .collect();
        Ok(())
    }

    #[step(join, next = train)]
    fn gather(&mut self, inputs: Inputs<Self>, ctx: &mut Ctx) -> Result<()> {
        log(ctx, "");
        self.total = inputs
            .iter()
            .map(|i| i.part.iter().sum::<u64>() + i.blob.iter().map(|&b| u64::from(b)).sum::<u64>())
            .sum();
        Ok(())
    }

    #[step(next = big)]
    #[checkpoint]
    fn train(&mut self, ctx: &mut Ctx) -> Result<()> {
        let mut epoch: u32 = ctx.checkpoint().load()?.unwrap_or(0);
        log(ctx, &format!("from={epoch}"));
        while epoch < 10 {
            std::thread::sleep(Duration::from_millis(15));
            epoch += 1;
            ctx.checkpoint().save(&epoch)?;
        }
        self.epochs = epoch;
        Ok(())
    }

    #[step(next = end)]
    fn big(&mut self, ctx: &mut Ctx) -> Result<()> {
        log(ctx, "");
        let n = (self.big_mib << 20) as usize;
        self.big = (0..n).map(|k| (k as u64 ^ self.total) as u8).collect();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self, ctx: &mut Ctx) -> Result<()> {
        log(ctx, "");
        self.summary = format!(
            "total={} epochs={} big={}",
            self.total,
            self.epochs,
            self.big.len()
        );
        println!("{}", self.summary);
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    flowlib::main::<Crash>()
}
