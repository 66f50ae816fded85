//! The foreach item can be taken by reference (`&T`) or by value (`T`, cloned), before or
//! after `ctx`.

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Items {
    rates: Vec<f64>,
    names: Vec<String>,
    score: f64,
    name: String,
}

#[flow]
impl Items {
    #[step(start, next = by_ref, foreach = rates)]
    fn start(&mut self) -> Result<()> {
        self.rates = vec![0.5];
        Ok(())
    }

    #[step(next = join_rates)]
    fn by_ref(&mut self, rate: &f64, ctx: &mut Ctx) -> Result<()> {
        let _ = ctx.index();
        self.score = *rate;
        Ok(())
    }

    #[step(join, next = names)]
    fn join_rates(&mut self, _inputs: Inputs<Self>) -> Result<()> {
        Ok(())
    }

    #[step(next = by_value, foreach = names)]
    fn names(&mut self) -> Result<()> {
        self.names = vec!["x".into()];
        Ok(())
    }

    #[step(next = join_names)]
    fn by_value(&mut self, ctx: &mut Ctx, name: String) -> Result<()> {
        let _ = ctx.index();
        self.name = name;
        Ok(())
    }

    #[step(join, next = end)]
    fn join_names(&mut self, _inputs: Inputs<Self>) -> Result<()> {
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let _ = flowlib::main::<Items>;
}
