//! A static branch whose arms meet in a join.

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Branch {
    a: u32,
    b: u32,
    total: u32,
}

#[flow]
impl Branch {
    #[step(start, next = [left, right])]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = merge)]
    fn left(&mut self) -> Result<()> {
        self.a = 1;
        Ok(())
    }

    #[step(next = merge)]
    fn right(&mut self) -> Result<()> {
        self.b = 2;
        Ok(())
    }

    /// A join may take the context too, in either order.
    #[step(join, next = end)]
    fn merge(&mut self, inputs: Inputs<Self>, ctx: &mut Ctx) -> Result<()> {
        let _ = ctx.task_id();
        self.total = inputs.iter().map(|i| i.a + i.b).sum();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let _ = flowlib::main::<Branch>;
}
