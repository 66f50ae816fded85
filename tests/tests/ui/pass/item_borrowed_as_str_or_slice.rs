//! A `String` item can be taken as `&str` and a `Vec<T>` item as `&[T]` (regression: this
//! used to produce eight internal-looking errors at `#[flow]`).

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Files {
    files: Vec<String>,
    batches: Vec<Vec<u32>>,
    longest: usize,
    total: u32,
}

#[flow]
impl Files {
    #[step(start, next = measure, foreach = files)]
    fn start(&mut self) -> Result<()> {
        self.files = vec!["a.txt".into()];
        Ok(())
    }

    #[step(next = joined)]
    fn measure(&mut self, file: &str) -> Result<()> {
        self.longest = file.len();
        Ok(())
    }

    #[step(join, next = sum)]
    fn joined(&mut self, _inputs: Inputs<Self>) -> Result<()> {
        self.batches = vec![vec![1, 2]];
        Ok(())
    }

    #[step(next = summed, foreach = batches)]
    fn sum(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = summed_join)]
    fn summed(&mut self, batch: &[u32]) -> Result<()> {
        self.total = batch.iter().sum();
        Ok(())
    }

    #[step(join, next = end)]
    fn summed_join(&mut self, _inputs: Inputs<Self>) -> Result<()> {
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let _ = flowlib::main::<Files>;
}
