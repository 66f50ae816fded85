//! The proxy under object_store's real S3 client (`cargo test -p flowlib-testkit --features aws
//! --lib fault_proxy`, with `scripts/services.sh start` and its env).

use super::*;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};

/// `(moto address, bucket)`, or `None` (skip) when the services are not configured.
fn moto() -> Option<(SocketAddr, String)> {
    let Ok(url) = std::env::var("FLOWLIB_TEST_S3") else {
        eprintln!("FLOWLIB_TEST_S3 unset: skipping (scripts/services.sh start)");
        return None;
    };
    let bucket = url
        .trim_start_matches("s3://")
        .split('/')
        .next()?
        .to_string();
    let endpoint =
        std::env::var("AWS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:19000".into());
    use std::net::ToSocketAddrs;
    let addr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_socket_addrs()
        .ok()?
        .next()?;
    Some((addr, bucket))
}

/// An S3 store talking to moto through `proxy`, retrying up to `retries` times.
fn store(proxy: &FaultProxy, bucket: &str, retries: usize) -> impl ObjectStore {
    AmazonS3Builder::new()
        .with_endpoint(proxy.url())
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("flowlib-test")
        .with_secret_access_key("flowlib-test-secret")
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(50),
                base: 2.0,
            },
            max_retries: retries,
            retry_timeout: Duration::from_secs(60),
        })
        .build()
        .expect("S3 store")
}

fn base(name: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("fault-proxy-test/{name}-{}-{t}", std::process::id())
}

#[tokio::test(flavor = "multi_thread")]
async fn object_store_plain() {
    let Some((moto, bucket)) = moto() else { return };
    let p = FaultProxy::start(moto, Faults::none()).unwrap();
    let s = store(&p, &bucket, 10);
    let dir = base("os-plain");
    let k = Path::from(format!("{dir}/blobs/a"));
    s.put(&k, PutPayload::from_static(b"hello")).await.unwrap();
    let got = s.get(&k).await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], b"hello");
    let listed: Vec<_> = s
        .list(Some(&Path::from(dir.clone())))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let mk = Path::from(format!("{dir}/multi"));
    let mut up = s.put_multipart(&mk).await.unwrap();
    up.put_part(vec![1u8; 5 << 20].into()).await.unwrap();
    up.put_part(vec![2u8; 1000].into()).await.unwrap();
    up.complete().await.unwrap();
    let got = s.get(&mk).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.len(), (5 << 20) + 1000);
    assert!(got[..5 << 20].iter().all(|&b| b == 1) && got[5 << 20..].iter().all(|&b| b == 2));
    let st = p.stats();
    assert_eq!(st.forwarded, st.requests);
    assert_eq!(st.count("GET", "/blobs/"), 1);
    assert_eq!(st.count("PUT", "partNumber="), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn object_store_survives_faults() {
    let Some((moto, bucket)) = moto() else { return };
    let faults = Faults {
        reset: 0.2,
        status_503: 0.2,
        truncate_response: 0.1,
        seed: 12345,
    };
    let p = FaultProxy::start(moto, faults).unwrap();
    // at a 50% fault rate 11 faults in a row (10 retries exhausted) do happen in a few
    // hundred requests: allow 20 retries
    let s = store(&p, &bucket, 20);
    let dir = base("os-faults");
    for i in 0..200 {
        let k = Path::from(format!("{dir}/blobs/{i}"));
        let data = format!("value-{i}-").repeat(100 + i);
        s.put(&k, PutPayload::from(data.clone())).await.unwrap();
        let got = s.get(&k).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], data.as_bytes());
    }
    let st = p.stats();
    assert!(
        st.resets > 20 && st.injected_503 > 20 && st.truncated > 10,
        "{st:?}"
    );
    assert!(st.count("GET", "/blobs/") > 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn object_store_create_after_lost_response_is_already_exists() {
    let Some((moto, bucket)) = moto() else { return };
    let p = FaultProxy::start(moto, Faults::none()).unwrap();
    let s = store(&p, &bucket, 10);
    let create = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    let k = Path::from(format!("{}/create", base("os-create")));

    // the first attempt's response is lost, object_store retries, the retry gets 412
    p.script([Action::Truncate]);
    let e = s
        .put_opts(&k, PutPayload::from_static(b"mine"), create.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(e, object_store::Error::AlreadyExists { .. }),
        "{e:?}"
    );
    let log = p.requests();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].2, log[1].2), (200, 412));
    assert_eq!(
        &s.get(&k).await.unwrap().bytes().await.unwrap()[..],
        b"mine"
    );

    // an RST on a create is not retried at all
    let k2 = Path::from(format!("{}/create", base("os-create-rst")));
    p.script([Action::Reset]);
    let e = s
        .put_opts(&k2, PutPayload::from_static(b"x"), create.clone())
        .await
        .unwrap_err();
    assert!(matches!(e, object_store::Error::Generic { .. }), "{e:?}");
    // ... a clean close before the response is
    p.set_reset_mode(ResetMode::Close);
    p.script([Action::Reset]);
    s.put_opts(&k2, PutPayload::from_static(b"x"), create.clone())
        .await
        .unwrap();
    // ... and so is a 503
    let k3 = Path::from(format!("{}/create", base("os-create-503")));
    p.script([Action::Status503]);
    s.put_opts(&k3, PutPayload::from_static(b"x"), create)
        .await
        .unwrap();
}
