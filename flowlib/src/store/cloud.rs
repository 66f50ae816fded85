//! Remote backends: S3 (`aws` feature), Google Cloud Storage (`gcp`) and Azure Blob
//! Storage (`azure`), configured through object_store's standard environment variables.
//! A URL whose backend is compiled out is a clear error naming the feature.

#![cfg_attr(
    not(any(feature = "aws", feature = "gcp", feature = "azure")),
    allow(unused_imports)
)]

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::store::backend::Opened;
use crate::store::Backend;

#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
/// Split `scheme://bucket/prefix` into the bucket URL part and the prefix.
fn split_url(url: &str) -> Result<(String, String)> {
    let parsed = url::Url::parse(url)
        .map_err(|e| Error::invalid(format!("invalid datastore URL `{url}`: {e}")))?;
    let host = parsed.host_str().unwrap_or("");
    if host.is_empty() {
        return Err(Error::invalid(format!(
            "datastore URL `{url}` names no bucket or container: expected {}://<bucket>/<prefix>",
            parsed.scheme()
        )));
    }
    let prefix = parsed.path().trim_matches('/').to_string();
    Ok((format!("{}://{}", parsed.scheme(), host), prefix))
}

#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
fn retry_config() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: std::time::Duration::from_millis(50),
            max_backoff: std::time::Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 10,
        retry_timeout: std::time::Duration::from_secs(180),
    }
}

#[allow(dead_code)]
fn build_error(url: &str, e: object_store::Error) -> Error {
    Error::Datastore {
        url: url.to_string(),
        message: format!("cannot configure the store: {e}"),
    }
}

/// `open_<backend>(url, options)`: the builder from object_store's environment variables,
/// the caller's options on top, our retry policy, and a runtime for its I/O; or, with the
/// feature compiled out, an error naming the feature.
macro_rules! remote_backends {
    ($($fn:ident: $feature:literal, $builder:ty, $key:ty => $backend:expr;)*) => {$(
        #[cfg(feature = $feature)]
        pub(crate) fn $fn(url: &str, options: &[(String, String)]) -> Result<Opened> {
            let (bucket_url, prefix) = split_url(url)?;
            let mut builder = <$builder>::from_env();
            for (k, v) in options {
                let key: $key = k.parse().map_err(|_| unknown_option(url, k))?;
                builder = builder.with_config(key, v);
            }
            let store = builder
                .with_url(bucket_url)
                .with_retry(retry_config())
                .build()
                .map_err(|e| build_error(url, e))?;
            let store = Arc::new(store);
            Ok(Opened {
                backend: $backend,
                signer: Some(store.clone()),
                store,
                prefix,
                exec: crate::store::backend::remote_runtime()?,
                url: url.trim_end_matches('/').to_string(),
            })
        }

        #[cfg(not(feature = $feature))]
        pub(crate) fn $fn(url: &str, _options: &[(String, String)]) -> Result<Opened> {
            Err(feature_missing(url, $feature))
        }
    )*};
}

remote_backends! {
    open_s3: "aws", object_store::aws::AmazonS3Builder, object_store::aws::AmazonS3ConfigKey => Backend::S3;
    open_gcs: "gcp", object_store::gcp::GoogleCloudStorageBuilder, object_store::gcp::GoogleConfigKey => Backend::Gcs;
    open_azure: "azure", object_store::azure::MicrosoftAzureBuilder, object_store::azure::AzureConfigKey => Backend::Azure;
}

#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
fn unknown_option(url: &str, key: &str) -> Error {
    Error::Datastore {
        url: url.to_string(),
        message: format!("unknown store option `{key}` (use object_store's configuration keys, like `aws_endpoint`)"),
    }
}

#[allow(dead_code)]
fn feature_missing(url: &str, feature: &str) -> Error {
    Error::Datastore {
        url: url.to_string(),
        message: format!(
            "this binary was built without flowlib's `{feature}` feature; enable it with `flowlib = {{ version = \"...\", features = [\"{feature}\"] }}`"
        ),
    }
}
