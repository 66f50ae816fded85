//! The `otel` feature: export the run's spans (`flowlib.run`, `flowlib.step`,
//! `flowlib.task`, see `run/telemetry.rs`) over OTLP/HTTP with protobuf bodies, when an
//! endpoint is configured:
//!
//! - `FLOWLIB_OTLP_ENDPOINT`: the collector's base URL (`http://127.0.0.1:4318`);
//! - else the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL) or
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (the base URL; `/v1/traces` is added).
//!
//! Every flowlib process exports its own spans: the driver its run, step and in-process
//! task spans, and each task process of the processes, Slurm, Kubernetes and AWS Batch
//! executors its `flowlib.task` span, with the run id, flow, step, task and attempt as
//! attributes (the trace context itself is not carried across processes).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use tracing_subscriber::layer::SubscriberExt;

/// Flushes and stops the exporter when dropped (at the end of `main`).
pub(crate) struct OtelGuard(opentelemetry_sdk::trace::SdkTracerProvider);

impl std::fmt::Debug for OtelGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtelGuard")
    }
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        if let Err(e) = self.0.shutdown() {
            eprintln!("flowlib: warning: could not flush spans to the OTLP endpoint: {e}");
        }
    }
}

/// The OTLP/HTTP traces URL the environment names, if any.
pub(crate) fn endpoint() -> Option<String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let traces = |base: String| {
        let base = base.trim_end_matches('/').to_string();
        if base.ends_with("/v1/traces") {
            base
        } else {
            format!("{base}/v1/traces")
        }
    };
    env("FLOWLIB_OTLP_ENDPOINT")
        .map(traces)
        .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT").map(traces))
}

/// Install a global `tracing` subscriber that exports spans to the configured endpoint.
/// Nothing happens without an endpoint; a failure is one warning line and the command
/// goes on without export.
pub(crate) fn install_from_env(flow: &str) -> Option<OtelGuard> {
    let url = endpoint()?;
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("flowlib: warning: no span export to {url}: {e}");
            return None;
        }
    };
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| format!("flowlib {flow}"));
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("flowlib"));
    let subscriber = tracing_subscriber::registry().with(layer);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!(
            "flowlib: warning: a tracing subscriber is already installed: spans are not exported to {url}"
        );
    }
    Some(OtelGuard(provider))
}
