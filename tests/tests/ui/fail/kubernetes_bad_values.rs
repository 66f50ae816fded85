use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Train {
    score: f64,
}

#[flow]
impl Train {
    #[step(start, next = fit)]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = end)]
    #[kubernetes(image = "has space", namespace = "ML_Jobs", node_selector = ["ssd"], tolerations = ["gpu=true", "gpu:Sometimes"], gpu_vendor = "NVIDIA", secrets = ["Bad_Name"], max_parallel = 0)]
    fn fit(&mut self) -> Result<()> {
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
