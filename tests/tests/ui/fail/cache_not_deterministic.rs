use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Train {
    score: f64,
}

#[flow]
impl Train {
    #[step(start, next = fit)]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    // A checkpointed step resumes from saved progress: not a function of its inputs.
    #[step(next = score)]
    #[cache]
    #[checkpoint]
    fn fit(&mut self) -> Result<()> {
        Ok(())
    }

    // Its result would depend on the attempt number.
    #[step(next = end)]
    #[cache]
    fn score(&mut self, ctx: &mut Ctx) -> Result<()> {
        self.score = f64::from(ctx.attempt());
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
