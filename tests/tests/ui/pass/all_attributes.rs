//! Every step attribute at once, in both spellings where there are two.

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Everything {
    x: u32,
    error: Option<String>,
}

#[flow]
impl Everything {
    #[step(start, next = heavy)]
    #[resources(cpu = 2)]
    #[timeout(minutes = 30)]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    /// Uses every attribute.
    #[step(next = flaky)]
    #[resources(cpu = 2, memory = "4GiB", gpu = 1)]
    #[retry(times = 3, delay = "1s")]
    #[timeout("30m")]
    #[catch(field = error)]
    #[checkpoint]
    fn heavy(&mut self, ctx: &mut Ctx) -> Result<()> {
        let _ = ctx.attempt();
        self.x += 1;
        Ok(())
    }

    #[step(next = end)]
    #[resources(memory = "512MiB")]
    #[retry]
    #[timeout(hours = 1, minutes = 30, seconds = 5)]
    #[catch]
    fn flaky(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(end)]
    #[timeout("250ms")]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let _ = flowlib::main::<Everything>;
}
