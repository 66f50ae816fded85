use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Train {
    #[param(defualt = 0.8, help = "fraction of rows used for training")]
    split: f64,
}

#[flow]
impl Train {
    #[step(start, next = end)]
    fn start(&mut self) -> Result<()> {
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
