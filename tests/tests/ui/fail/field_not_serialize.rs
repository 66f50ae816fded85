use flowlib::prelude::*;

#[derive(Default)]
struct Model {
    weights: Vec<f64>,
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Train {
    score: f64,
    #[serde(skip)]
    models: Vec<Model>,
}

#[flow]
impl Train {
    #[step(start, next = end)]
    fn start(&mut self) -> Result<()> {
        self.models.push(Model {
            weights: vec![self.score],
        });
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
