use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Train {
    #[param(default = "data.csv", help = "where the rows come from")]
    datastore: String,
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
