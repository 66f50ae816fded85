use super::http::{read_chunked, read_exact_vec, read_head, Head};
use super::*;
use std::io::{BufReader, Read, Write};
use std::sync::atomic::AtomicUsize;

/// Response of the raw test client.
#[derive(Debug)]
struct Resp {
    status: u16,
    head: Head,
    body: Vec<u8>,
}

/// A minimal HTTP/1.1 client: one request per connection; errors if the response is cut.
fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Resp> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n");
    let mut chunked = false;
    for (k, v) in headers {
        chunked |= k.eq_ignore_ascii_case("transfer-encoding");
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !chunked && (!body.is_empty() || method == "PUT" || method == "POST") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut w = &s;
    w.write_all(req.as_bytes())?;
    if chunked {
        for c in body.chunks(1000) {
            write!(w, "{:x}\r\n", c.len())?;
            w.write_all(c)?;
            w.write_all(b"\r\n")?;
        }
        w.write_all(b"0\r\nX-Trailer: 1\r\n\r\n")?;
    } else {
        w.write_all(body)?;
    }
    let mut r = BufReader::new(&s);
    let (head, status) = loop {
        let head = read_head(&mut r)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        let status: u16 = head
            .start
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        if status != 100 {
            break (head, status);
        }
    };
    let body = if method == "HEAD" || status == 204 {
        Vec::new()
    } else if head.is_chunked() {
        read_chunked(&mut r)?
    } else if let Some(n) = head.content_length()? {
        read_exact_vec(&mut r, n)?
    } else {
        let mut b = Vec::new();
        r.read_to_end(&mut b)?;
        b
    };
    Ok(Resp { status, head, body })
}

/// A std upstream: answers `<method> <target> <body len> <host> <sha-ish>` ; target
/// containing "chunked" -> chunked response, "eof" -> body delimited by EOF, "empty" ->
/// empty 200 body. Counts requests it received.
struct Stub {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

fn stub() -> Stub {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let h = h.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(&s);
                let Ok(Some(head)) = read_head(&mut r) else {
                    return;
                };
                let body = if head.is_chunked() {
                    read_chunked(&mut r).unwrap()
                } else {
                    read_exact_vec(&mut r, head.content_length().unwrap().unwrap_or(0)).unwrap()
                };
                h.fetch_add(1, Ordering::SeqCst);
                let mut p = head.start.split_whitespace();
                let (m, t) = (p.next().unwrap(), p.next().unwrap());
                let sum: u64 = body.iter().map(|&b| b as u64).sum();
                let text = format!(
                    "{m} {t} {} host={} conn={} te={} sum={sum}",
                    body.len(),
                    head.get("host").unwrap_or(""),
                    head.get("connection").unwrap_or(""),
                    head.get("transfer-encoding").unwrap_or("-"),
                );
                let mut w = &s;
                if t.contains("chunked") {
                    let b = text.as_bytes();
                    let _ = write!(
                        w,
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n{:x}\r\n",
                        5
                    );
                    let _ = w.write_all(&b[..5]);
                    let _ = write!(w, "\r\n{:x}\r\n", b.len() - 5);
                    let _ = w.write_all(&b[5..]);
                    let _ = w.write_all(b"\r\n0\r\n\r\n");
                } else if t.contains("eof") {
                    let _ = write!(w, "HTTP/1.1 200 OK\r\n\r\n{text}");
                } else if t.contains("empty") || m == "HEAD" {
                    let _ = write!(
                        w,
                        "HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: {}\r\n\r\n",
                        if m == "HEAD" { 12345 } else { 0 }
                    );
                } else {
                    let _ = write!(
                        w,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    );
                }
                let _ = w.flush();
            });
        }
    });
    Stub { addr, hits }
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn forwards_faithfully() {
    let up = stub();
    let p = FaultProxy::start(up.addr, Faults::none()).unwrap();
    assert!(p.url().starts_with("http://127.0.0.1:"));

    let r = http(p.addr(), "GET", "/b/k?list-type=2&x=1", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    let expected_host = format!("host={}", p.addr());
    assert!(
        text(&r).starts_with("GET /b/k?list-type=2&x=1 0 "),
        "{}",
        text(&r)
    );
    assert!(
        text(&r).contains(&expected_host),
        "Host must be kept: {}",
        text(&r)
    );
    assert!(text(&r).contains("conn=close"), "{}", text(&r));
    assert_eq!(r.head.get("connection"), Some("close"));

    // a large body
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let sum: u64 = big.iter().map(|&b| b as u64).sum();
    let r = http(p.addr(), "PUT", "/b/blobs/big", &[], &big).unwrap();
    assert_eq!(
        text(&r),
        format!("PUT /b/blobs/big 5000000 {expected_host} conn=close te=- sum={sum}")
    );

    // a chunked request body is forwarded with Content-Length
    let r = http(
        p.addr(),
        "PUT",
        "/b/c",
        &[("Transfer-Encoding", "chunked")],
        &big[..4500],
    )
    .unwrap();
    let sum: u64 = big[..4500].iter().map(|&b| b as u64).sum();
    assert_eq!(
        text(&r),
        format!("PUT /b/c 4500 {expected_host} conn=close te=- sum={sum}")
    );

    // chunked and EOF-delimited responses are re-framed with Content-Length
    let r = http(p.addr(), "GET", "/chunked", &[], b"").unwrap();
    assert!(r.head.get("transfer-encoding").is_none());
    assert_eq!(
        r.head.get("content-length").unwrap(),
        r.body.len().to_string()
    );
    assert!(text(&r).starts_with("GET /chunked 0"), "{}", text(&r));
    let r = http(p.addr(), "GET", "/eof", &[], b"").unwrap();
    assert_eq!(
        r.head.get("content-length").unwrap(),
        r.body.len().to_string()
    );
    assert!(text(&r).starts_with("GET /eof 0"), "{}", text(&r));

    // HEAD keeps the object's Content-Length and has no body
    let r = http(p.addr(), "HEAD", "/b/k", &[], b"").unwrap();
    assert_eq!(r.head.get("content-length"), Some("12345"));
    assert_eq!(r.head.get("etag"), Some("\"e\""));

    // Expect: 100-continue
    let r = http(
        p.addr(),
        "PUT",
        "/b/e",
        &[("Expect", "100-continue")],
        b"abc",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(text(&r).starts_with("PUT /b/e 3 "), "{}", text(&r));
    let st = p.stats();
    assert_eq!(st.requests, 7);
    assert_eq!(st.forwarded, 7);
    assert_eq!(st.by_method["PUT"], 3);
    assert_eq!(st.count("PUT", "/blobs/"), 1);
    assert_eq!(st.count("*", "/b/"), 5);
    assert_eq!(up.hits.load(Ordering::SeqCst), 7);
    let reqs = p.requests();
    assert_eq!(reqs[0], ("GET".into(), "/b/k?list-type=2&x=1".into(), 200));
}

#[test]
fn injects_faults() {
    let up = stub();
    let p = FaultProxy::start(
        up.addr,
        Faults {
            reset: 1.0,
            ..Faults::none()
        },
    )
    .unwrap();
    let e = http(p.addr(), "GET", "/k", &[], b"").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    let e = http(p.addr(), "PUT", "/k", &[], &[7u8; 100_000]).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{e}"
    );
    p.set_reset_mode(ResetMode::Close);
    let e = http(p.addr(), "PUT", "/k", &[], &[7u8; 100_000]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    assert_eq!(up.hits.load(Ordering::SeqCst), 0);

    p.set_faults(Faults {
        status_503: 1.0,
        ..Faults::none()
    });
    let r = http(p.addr(), "PUT", "/k", &[], &[7u8; 100_000]).unwrap();
    assert_eq!(r.status, 503);
    assert!(text(&r).contains("<Code>SlowDown</Code>"));
    assert_eq!(r.head.get("connection"), Some("close"));
    assert_eq!(up.hits.load(Ordering::SeqCst), 0);

    p.set_faults(Faults {
        truncate_response: 1.0,
        ..Faults::none()
    });
    let e = http(p.addr(), "GET", "/k", &[], b"").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        1,
        "truncated requests reach the server"
    );
    let e = http(p.addr(), "PUT", "/empty", &[], b"x").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    p.set_truncate_mode(TruncateMode::Headers);
    let e = http(p.addr(), "GET", "/k", &[], b"").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    assert_eq!(up.hits.load(Ordering::SeqCst), 3);

    let st = p.stats();
    assert_eq!(
        (
            st.requests,
            st.resets,
            st.injected_503,
            st.truncated,
            st.forwarded
        ),
        (7, 3, 1, 3, 3)
    );
    let statuses: Vec<u16> = p.requests().into_iter().map(|r| r.2).collect();
    assert_eq!(statuses, [0, 0, 0, 503, 200, 200, 200]);

    // scripted fates override the rates, then the rates apply again
    p.set_faults(Faults::none());
    p.script([Action::Status503, Action::Truncate]);
    assert_eq!(http(p.addr(), "GET", "/s1", &[], b"").unwrap().status, 503);
    assert!(http(p.addr(), "GET", "/s2", &[], b"").is_err());
    assert_eq!(http(p.addr(), "GET", "/s3", &[], b"").unwrap().status, 200);
    let outcomes: Vec<Outcome> = p.records()[7..].iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Injected503, Outcome::Truncated, Outcome::Forwarded]
    );

    // upstream down -> 502
    drop(p);
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let p = FaultProxy::start(dead, Faults::none()).unwrap();
    assert_eq!(http(p.addr(), "GET", "/k", &[], b"").unwrap().status, 502);
    assert_eq!(p.stats().upstream_errors, 1);
}

#[test]
fn deterministic_and_rates() {
    let up = stub();
    let faults = Faults {
        reset: 0.2,
        status_503: 0.2,
        truncate_response: 0.1,
        seed: 7,
    };
    let run = || {
        let p = FaultProxy::start(up.addr, faults).unwrap();
        p.set_reset_mode(ResetMode::Close);
        for i in 0..400 {
            let _ = http(p.addr(), "GET", &format!("/k{i}"), &[], b"");
        }
        p.records()
            .into_iter()
            .map(|r| r.outcome)
            .collect::<Vec<_>>()
    };
    let a = run();
    assert_eq!(a, run());
    let n = |o| a.iter().filter(|&&x| x == o).count();
    assert!(
        (50..110).contains(&n(Outcome::Reset)),
        "{}",
        n(Outcome::Reset)
    );
    assert!(
        (50..110).contains(&n(Outcome::Injected503)),
        "{}",
        n(Outcome::Injected503)
    );
    assert!(
        (20..65).contains(&n(Outcome::Truncated)),
        "{}",
        n(Outcome::Truncated)
    );
    // another seed gives another sequence
    let p = FaultProxy::start(up.addr, Faults { seed: 8, ..faults }).unwrap();
    p.set_reset_mode(ResetMode::Close);
    for i in 0..400 {
        let _ = http(p.addr(), "GET", &format!("/k{i}"), &[], b"");
    }
    assert_ne!(
        a,
        p.records()
            .into_iter()
            .map(|r| r.outcome)
            .collect::<Vec<_>>()
    );
}

#[test]
fn drop_stops_with_idle_and_inflight_connections() {
    // an upstream that accepts and never answers
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let hang = l.local_addr().unwrap();
    let keep = std::thread::spawn(move || {
        let c: Vec<TcpStream> = l.incoming().take(1).flatten().collect();
        std::thread::sleep(Duration::from_secs(3));
        drop(c);
    });
    let p = FaultProxy::start(hang, Faults::none()).unwrap();
    let addr = p.addr();
    let _idle = TcpStream::connect(addr).unwrap(); // never sends anything
    let inflight = std::thread::spawn(move || http(addr, "GET", "/k", &[], b""));
    std::thread::sleep(Duration::from_millis(300));
    let t = std::time::Instant::now();
    drop(p);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "drop took {:?}",
        t.elapsed()
    );
    assert!(TcpStream::connect(addr).is_err(), "listener must be closed");
    let r = inflight.join().unwrap();
    assert!(r.is_err() || r.unwrap().status == 502);
    keep.join().unwrap();
}

// ---------------------------------------------------------------- against moto (S3)

/// `(moto address, bucket)` when the test services run, else `None` (test skipped).
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
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    use std::net::ToSocketAddrs;
    let addr = hostport.to_socket_addrs().ok()?.next()?;
    Some((addr, bucket))
}

fn unique(prefix: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("fault-proxy-test/{prefix}-{}-{t}", std::process::id())
}

/// moto identifies the caller by the access key of the `Authorization` header (it does not
/// check signatures); anonymous requests may be refused (403), so send a fake SigV4 one.
fn s3(a: SocketAddr, m: &str, t: &str, h: &[(&str, &str)], b: &[u8]) -> io::Result<Resp> {
    let key = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "flowlib-test".into());
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={key}/20250101/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=00"
    );
    let mut hs = vec![("Authorization", auth.as_str())];
    hs.extend_from_slice(h);
    http(a, m, t, &hs, b)
}

#[test]
fn moto_through_proxy() {
    let Some((moto, bucket)) = moto() else { return };
    let p = FaultProxy::start(moto, Faults::none()).unwrap();
    let a = p.addr();
    let dir = unique("plain");
    let key = format!("/{bucket}/{dir}/blobs/one");

    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let r = s3(a, "PUT", &key, &[], &data).unwrap();
    assert_eq!(r.status, 200, "{}", text(&r));
    let r = s3(a, "GET", &key, &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body == data, "GET returned {} bytes", r.body.len());
    let r = s3(a, "HEAD", &key, &[], b"").unwrap();
    assert_eq!(r.head.get("content-length"), Some("3000000"));

    // conditional create: second attempt -> 412
    let r = s3(a, "PUT", &key, &[("If-None-Match", "*")], b"x").unwrap();
    assert_eq!(r.status, 412, "{}", text(&r));

    // list
    let r = s3(
        a,
        "GET",
        &format!("/{bucket}?list-type=2&prefix={dir}/"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(
        text(&r).contains(&format!("<Key>{dir}/blobs/one</Key>")),
        "{}",
        text(&r)
    );

    // multipart: create, 2 parts (5 MiB + rest), complete, read back
    let mkey = format!("/{bucket}/{dir}/multi");
    let r = s3(a, "POST", &format!("{mkey}?uploads"), &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", text(&r));
    let t = text(&r);
    let id = t
        .split("<UploadId>")
        .nth(1)
        .unwrap()
        .split("</UploadId>")
        .next()
        .unwrap()
        .to_string();
    let big: Vec<u8> = (0..(5 << 20) + 1234u32).map(|i| (i % 241) as u8).collect();
    let mut etags = Vec::new();
    for (n, part) in [&big[..5 << 20], &big[5 << 20..]].iter().enumerate() {
        let r = s3(
            a,
            "PUT",
            &format!("{mkey}?partNumber={}&uploadId={id}", n + 1),
            &[],
            part,
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", text(&r));
        etags.push(r.head.get("etag").unwrap().to_string());
    }
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part>\
         <Part><PartNumber>2</PartNumber><ETag>{}</ETag></Part></CompleteMultipartUpload>",
        etags[0], etags[1]
    );
    let r = s3(
        a,
        "POST",
        &format!("{mkey}?uploadId={id}"),
        &[("Transfer-Encoding", "chunked")],
        xml.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", text(&r));
    let r = s3(a, "GET", &mkey, &[], b"").unwrap();
    assert!(r.body == big, "multipart read back {} bytes", r.body.len());

    let st = p.stats();
    assert_eq!(st.forwarded, st.requests);
    assert_eq!(st.count("GET", "/blobs/"), 1);
    assert_eq!(st.count("PUT", "partNumber="), 2);
}

#[test]
fn moto_with_faults() {
    let Some((moto, bucket)) = moto() else { return };
    let faults = Faults {
        reset: 0.2,
        status_503: 0.2,
        truncate_response: 0.1,
        seed: 1,
    };
    let p = FaultProxy::start(moto, faults).unwrap();
    let a = p.addr();
    let dir = unique("faults");
    // a client retrying any failure (what a retrying PUT/GET of idempotent data amounts to)
    let retry = |m: &str, t: &str, h: &[(&str, &str)], b: &[u8]| -> Resp {
        for _ in 0..50 {
            match s3(a, m, t, h, b) {
                Ok(r) if r.status != 503 => return r,
                _ => {}
            }
        }
        panic!("{m} {t}: 50 failures in a row");
    };
    for i in 0..100 {
        let key = format!("/{bucket}/{dir}/blobs/{i}");
        let body = format!("value {i}").repeat(i + 1);
        assert_eq!(retry("PUT", &key, &[], body.as_bytes()).status, 200);
        let r = retry("GET", &key, &[], b"");
        assert_eq!(r.status, 200);
        assert_eq!(text(&r), body);
    }
    let st = p.stats();
    assert!(
        st.resets > 0 && st.injected_503 > 0 && st.truncated > 0,
        "{st:?}"
    );

    // "the server did it but the client never heard back": a conditional create whose
    // response is lost; the retry is refused with 412 although nobody else wrote it
    p.set_faults(Faults {
        truncate_response: 1.0,
        ..Faults::none()
    });
    let key = format!("/{bucket}/{dir}/create-once");
    let e = s3(a, "PUT", &key, &[("If-None-Match", "*")], b"mine").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    p.set_faults(Faults::none());
    let r = s3(a, "PUT", &key, &[("If-None-Match", "*")], b"mine").unwrap();
    assert_eq!(r.status, 412, "{}", text(&r));
    assert_eq!(text(&s3(a, "GET", &key, &[], b"").unwrap()), "mine");
    let reqs = p.requests();
    let n = reqs.len();
    assert_eq!(
        reqs[n - 3].2,
        200,
        "the truncated create did succeed upstream"
    );
    assert_eq!(reqs[n - 2].2, 412);
}
