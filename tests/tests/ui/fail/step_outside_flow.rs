use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Train {
    score: f64,
}

impl Train {
    #[step(start, next = end)]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let mut t = Train::default();
    let _ = t.start();
}
