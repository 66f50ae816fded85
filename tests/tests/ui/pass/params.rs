//! Parameters of several types: numbers, bool, String with a default, required, JSON lists,
//! renamed, and ones documented by their doc comment instead of `help`.

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Params {
    /// Fraction of rows used for training.
    #[param(default = 0.8)]
    split: f64,
    #[param(default = 100u32, help = "epochs per model")]
    epochs: u32,
    #[param(help = "print more")]
    verbose: bool,
    #[param(default = "adam", help = "optimizer name")]
    optimizer: String,
    #[param(required, help = "where the data is")]
    input: String,
    #[param(default = vec![1, 2, 3], help = "layer sizes")]
    layers: Vec<u32>,
    #[param(name = "lr", default = 0.01)]
    learning_rate: f64,
    #[param]
    seed: Option<u64>,
    result: f64,
}

#[flow]
impl Params {
    #[step(start, next = end)]
    fn start(&mut self) -> Result<()> {
        self.result = self.split * f64::from(self.epochs);
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let _ = flowlib::main::<Params>;
}
