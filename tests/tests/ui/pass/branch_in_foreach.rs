//! A static branch inside each task of a foreach: the branch join closes first.

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Nested {
    items: Vec<String>,
    item: String,
    upper: String,
    len: usize,
    done: Vec<String>,
}

#[flow]
impl Nested {
    #[step(start, next = each, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = vec!["a".into(), "bc".into()];
        Ok(())
    }

    #[step(next = [upper, measure])]
    fn each(&mut self, item: String) -> Result<()> {
        self.item = item;
        Ok(())
    }

    #[step(next = merge)]
    fn upper(&mut self) -> Result<()> {
        self.upper = self.item.to_uppercase();
        Ok(())
    }

    #[step(next = merge)]
    fn measure(&mut self) -> Result<()> {
        self.len = self.item.len();
        Ok(())
    }

    #[step(join, next = collect)]
    fn merge(&mut self, inputs: Inputs<Self>) -> Result<()> {
        for i in inputs.iter() {
            self.upper.push_str(&i.upper);
            self.len += i.len;
        }
        Ok(())
    }

    #[step(join, next = end)]
    fn collect(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.done = inputs.iter().map(|i| i.upper.clone()).collect();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let _ = flowlib::main::<Nested>;
}
