use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Train {
    rates: Vec<f64>,
    score: f64,
}

#[flow]
impl Train {
    #[step(start, next = fit, foreach = rates)]
    fn start(&mut self) -> Result<()> {
        self.rates = vec![0.1, 0.01];
        Ok(())
    }

    #[step(next = pick)]
    #[resources(cpu = 2, memory = "4GiB", gpu = 1)]
    #[kubernetes(
        image = "ghcr.io/acme/train:1.2",
        namespace = "ml-jobs",
        service_account = "flow-runner",
        node_selector = { "disktype": "ssd", "cloud.google.com/gke-accelerator": "nvidia-l4" },
        tolerations = ["nvidia.com/gpu:NoSchedule", "dedicated=ml:NoExecute"],
        gpu_vendor = "nvidia",
        secrets = ["aws-credentials"],
        max_parallel = 4
    )]
    fn fit(&mut self, rate: &f64) -> Result<()> {
        self.score = *rate;
        Ok(())
    }

    #[step(join, next = end)]
    #[kubernetes]
    fn pick(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.score = inputs.iter().map(|i| i.score).fold(0.0, f64::max);
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let g = <Train as flowlib::Flow>::graph();
    let k = g.step("fit").unwrap().kubernetes.unwrap();
    assert_eq!(k.image, Some("ghcr.io/acme/train:1.2"));
    assert_eq!(k.namespace, Some("ml-jobs"));
    assert_eq!(k.service_account, Some("flow-runner"));
    assert_eq!(
        k.node_selector,
        &[("disktype", "ssd"), ("cloud.google.com/gke-accelerator", "nvidia-l4")]
    );
    assert_eq!(
        k.tolerations,
        &[
            ("nvidia.com/gpu", "Exists", "", "NoSchedule"),
            ("dedicated", "Equal", "ml", "NoExecute")
        ]
    );
    assert_eq!(k.gpu_vendor, Some("nvidia"));
    assert_eq!(k.secrets, &["aws-credentials"]);
    assert_eq!(k.max_parallel, Some(4));
    assert_eq!(
        g.step("pick").unwrap().kubernetes,
        Some(flowlib::KubernetesOptions::default())
    );
    assert!(g.step("end").unwrap().kubernetes.is_none());
}
