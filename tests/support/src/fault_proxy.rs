//! A fault-injecting HTTP/1.1 proxy on loopback, for testing flowlib against an object store
//! (moto, Azurite, ...) that drops connections, answers 503 and loses responses.
//!
//! ```no_run
//! use flowlib_testkit::fault_proxy::{FaultProxy, Faults};
//! let upstream: std::net::SocketAddr = "127.0.0.1:19000".parse().unwrap();
//! let proxy = FaultProxy::start(
//!     upstream,
//!     Faults { reset: 0.2, status_503: 0.2, truncate_response: 0.1, seed: 42 },
//! )
//! .unwrap();
//! // point the store at proxy.url() (AmazonS3Builder::with_endpoint + with_allow_http(true))
//! proxy.set_faults(Faults::none()); // e.g. to verify the results fault-free
//! let stats = proxy.stats();
//! assert!(stats.count("GET", "/blobs/") > 0);
//! ```
//!
//! Every client connection carries exactly one request: the proxy reads it (head and body;
//! chunked bodies are decoded and forwarded with `Content-Length`), decides its fate with a
//! seeded xorshift PRNG (one draw per request, in the order request heads are read, so a run
//! is deterministic given the seed and the request order), opens a fresh upstream connection,
//! sends the request with `Connection: close`, reads the whole upstream response and returns
//! it with `Connection: close`, then closes the client connection. The `Host` header and every
//! other end-to-end header is forwarded unchanged, so request signatures still match.
//!
//! Faults, per request (probabilities are checked in this order with a single draw):
//! - `reset`: the request is never forwarded; right after its head is read the client
//!   connection is aborted with a TCP RST ([`ResetMode::Rst`], the default) or, with
//!   [`ResetMode::Close`], the whole request is read and the connection closed cleanly (FIN)
//!   without a response.
//! - `status_503`: the whole request is read but not forwarded; the client gets
//!   `503 Service Unavailable` with an S3 `SlowDown` XML error body and `Connection: close`.
//! - `truncate_response`: the request IS forwarded and executed upstream, but the client only
//!   gets part of the response, then a clean close (FIN). With [`TruncateMode::Auto`] (the
//!   default) a response with a body is cut in the middle of the body (status line and all
//!   headers sent, `Content-Length` announcing the full length) and a response without a body
//!   is cut in the middle of its headers; [`TruncateMode::Headers`] always cuts inside the
//!   headers, so the client never learns the status. Either way the client sees an error
//!   although the server did the work: "the server did it but the client never heard back".
//!
//! [`FaultProxy::script`] forces the fate of the next requests regardless of the rates (e.g.
//! `[Action::Truncate]`: lose the response of the next request), for targeted tests.
//!
//! If the upstream cannot be reached or answers garbage, the client gets `502 Bad Gateway`.
//!
//! What object_store 0.14.2's S3 client does with these faults (measured against moto):
//! - 503: retried for every request (`client/retry.rs` 405-431).
//! - [`ResetMode::Close`] and header-cut truncation: hyper reports an incomplete message,
//!   classified `HttpErrorKind::Request` and retried for every method, PUT/POST included.
//! - [`ResetMode::Rst`]: `ConnectionReset` is `HttpErrorKind::Interrupted`, retried only for
//!   idempotent requests: GET/HEAD/list, `PutMode::Overwrite`, multipart create/part/complete;
//!   NOT for `PutMode::Create`/`Update` or `delete` (the error surfaces as `Error::Generic`).
//! - A truncated create's retry gets 412 and surfaces as `Error::AlreadyExists` although the
//!   first attempt wrote the object.
//! - Body cuts ([`TruncateMode::Auto`]) are retried for GET (range request) only; for list,
//!   create/complete multipart, delete and error bodies they surface as `Error::Generic`.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Fault probabilities, each per request, in `[0, 1]`; their sum should not exceed 1.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// Abort the client connection right after the request head (no response, not forwarded).
    pub reset: f64,
    /// Answer `503 SlowDown` without forwarding.
    pub status_503: f64,
    /// Forward, then send the client only part of the response.
    pub truncate_response: f64,
    /// Seed of the PRNG deciding the faults (0 is replaced by a fixed non-zero constant).
    pub seed: u64,
}

impl Faults {
    /// No faults: forward everything faithfully.
    pub fn none() -> Faults {
        Faults::default()
    }
}

/// How a `reset` fault ends the client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResetMode {
    /// Abortive close right after the request head: the client gets a TCP RST
    /// (`ECONNRESET`, or `EPIPE` if it is still writing the body).
    #[default]
    Rst,
    /// Read the whole request, then close cleanly (FIN) without answering: the client sees the
    /// connection closed before a response (hyper: "connection closed before message completed").
    Close,
}

/// Where a `truncate_response` fault cuts the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TruncateMode {
    /// In the body if there is one (all headers sent), else in the headers.
    #[default]
    Auto,
    /// Always in the headers: the client never sees a complete status line + header block.
    Headers,
}

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still being handled.
    Pending,
    /// Forwarded, the full response was returned.
    Forwarded,
    /// Connection aborted, not forwarded.
    Reset,
    /// Answered 503, not forwarded.
    Injected503,
    /// Forwarded (the server executed it), the client got part of the response.
    Truncated,
    /// The upstream could not be reached or its response could not be parsed: answered 502.
    UpstreamError,
    /// The client went away or sent something unparseable before a decision was made.
    ClientError,
}

/// One request seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The request target as sent by the client: path and query.
    pub target: String,
    /// The status the client was sent (for truncated responses, the status of the cut
    /// response; 0 if reset or still pending).
    pub status: u16,
    /// What the proxy did.
    pub outcome: Outcome,
}

/// Counters (a snapshot; see [`FaultProxy::stats`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Requests whose head was read (each got a fault decision).
    pub requests: u64,
    /// Requests sent upstream, i.e. executed by the server: faithful forwards plus truncated ones.
    pub forwarded: u64,
    /// `reset` faults.
    pub resets: u64,
    /// `status_503` faults.
    pub injected_503: u64,
    /// `truncate_response` faults.
    pub truncated: u64,
    /// Requests answered 502 because the upstream failed.
    pub upstream_errors: u64,
    /// Requests per method.
    pub by_method: BTreeMap<String, u64>,
    /// Every request, in decision order.
    pub log: Vec<RequestRecord>,
}

impl Stats {
    /// Requests with this method (`""` or `"*"`: any) whose target contains `needle`.
    pub fn count(&self, method: &str, needle: &str) -> usize {
        self.matching(method, needle).count()
    }

    /// Like [`Stats::count`], restricted to requests that actually reached the server
    /// (forwarded or truncated).
    pub fn count_forwarded(&self, method: &str, needle: &str) -> usize {
        self.matching(method, needle)
            .filter(|r| matches!(r.outcome, Outcome::Forwarded | Outcome::Truncated))
            .count()
    }

    /// Like [`Stats::count`], restricted to requests that got a fault (reset, 503, truncated).
    pub fn count_faulted(&self, method: &str, needle: &str) -> usize {
        self.matching(method, needle)
            .filter(|r| {
                matches!(
                    r.outcome,
                    Outcome::Reset | Outcome::Injected503 | Outcome::Truncated
                )
            })
            .count()
    }

    /// The records with this method (`""` or `"*"`: any) whose target contains `needle`.
    pub fn matching<'a>(
        &'a self,
        method: &'a str,
        needle: &'a str,
    ) -> impl Iterator<Item = &'a RequestRecord> + 'a {
        self.log.iter().filter(move |r| {
            (method.is_empty() || method == "*" || r.method.eq_ignore_ascii_case(method))
                && r.target.contains(needle)
        })
    }
}

/// A running proxy; dropping it stops it (closing in-flight connections) and joins its threads.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

struct Shared {
    upstream: SocketAddr,
    stop: AtomicBool,
    state: Mutex<State>,
    /// Clones of every open socket (client and upstream side), shut down on drop so that no
    /// connection thread stays blocked.
    sockets: Mutex<HashMap<u64, TcpStream>>,
    next_socket: AtomicU64,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

struct State {
    faults: Faults,
    rng: XorShift,
    reset_mode: ResetMode,
    truncate_mode: TruncateMode,
    script: std::collections::VecDeque<Action>,
    log: Vec<RequestRecord>,
}

/// xorshift64* : tiny, deterministic, good enough for fault decisions.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // splitmix the seed so that nearby seeds give unrelated streams
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The fate of one request, for [`FaultProxy::script`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Forward faithfully.
    Forward,
    /// A `reset` fault.
    Reset,
    /// A `status_503` fault.
    Status503,
    /// A `truncate_response` fault.
    Truncate,
}

const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_HEAD: usize = 1 << 20;

impl FaultProxy {
    /// Listen on `127.0.0.1:<ephemeral port>` and forward to `upstream`.
    pub fn start(upstream: SocketAddr, faults: Faults) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                faults,
                rng: XorShift::new(faults.seed),
                reset_mode: ResetMode::default(),
                truncate_mode: TruncateMode::default(),
                script: Default::default(),
                log: Vec::new(),
            }),
            sockets: Mutex::new(HashMap::new()),
            next_socket: AtomicU64::new(0),
            workers: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || accept_loop(listener, s))?;
        Ok(FaultProxy {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replace the fault rates; the PRNG is re-seeded with `faults.seed`.
    pub fn set_faults(&self, faults: Faults) {
        let mut st = lock(&self.shared.state);
        st.faults = faults;
        st.rng = XorShift::new(faults.seed);
    }

    /// The current fault rates.
    pub fn faults(&self) -> Faults {
        lock(&self.shared.state).faults
    }

    /// How `reset` faults end the connection (default [`ResetMode::Rst`]).
    pub fn set_reset_mode(&self, mode: ResetMode) {
        lock(&self.shared.state).reset_mode = mode;
    }

    /// Where `truncate_response` faults cut the response (default [`TruncateMode::Auto`]).
    pub fn set_truncate_mode(&self, mode: TruncateMode) {
        lock(&self.shared.state).truncate_mode = mode;
    }

    /// Force the fate of the next requests, in order (e.g. `[Action::Truncate]`: the next
    /// request's response is lost, whatever the rates). Replaces any unused rest of an earlier
    /// script. Scripted requests consume no PRNG draw; once the script is used up the fault
    /// rates apply again.
    pub fn script(&self, actions: impl IntoIterator<Item = Action>) {
        lock(&self.shared.state).script = actions.into_iter().collect();
    }

    /// Counters and the request log.
    pub fn stats(&self) -> Stats {
        let st = lock(&self.shared.state);
        let mut s = Stats {
            requests: st.log.len() as u64,
            log: st.log.clone(),
            ..Stats::default()
        };
        for r in &st.log {
            *s.by_method.entry(r.method.clone()).or_default() += 1;
            match r.outcome {
                Outcome::Forwarded => s.forwarded += 1,
                Outcome::Truncated => {
                    s.forwarded += 1;
                    s.truncated += 1
                }
                Outcome::Reset => s.resets += 1,
                Outcome::Injected503 => s.injected_503 += 1,
                Outcome::UpstreamError => s.upstream_errors += 1,
                Outcome::Pending | Outcome::ClientError => {}
            }
        }
        s
    }

    /// `(method, path+query, status returned to the client, 0 if reset or pending)` of every
    /// request, in decision order.
    pub fn requests(&self) -> Vec<(String, String, u16)> {
        lock(&self.shared.state)
            .log
            .iter()
            .map(|r| (r.method.clone(), r.target.clone(), r.status))
            .collect()
    }

    /// The full request log.
    pub fn records(&self) -> Vec<RequestRecord> {
        lock(&self.shared.state).log.clone()
    }

    /// Forget the request log (counters included); fault rates and PRNG state are kept.
    pub fn clear_log(&self) {
        lock(&self.shared.state).log.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // unblock accept()
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        for s in lock(&self.shared.sockets).values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let workers = std::mem::take(&mut *lock(&self.shared.workers));
        for w in workers {
            let _ = w.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let conn = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match conn {
            Ok((s, _)) => s,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        // register before spawning: once the accept thread is joined, Drop's sweep sees
        // every accepted socket
        let Ok(id) = register(&shared, &stream) else {
            continue;
        };
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("fault-proxy-conn".into())
            .spawn(move || {
                let client = Registered {
                    stream,
                    id,
                    shared: &s,
                };
                handle(&client, &s);
            });
        let mut workers = lock(&shared.workers);
        workers.retain(|w| !w.is_finished());
        if let Ok(h) = spawned {
            workers.push(h);
        }
    }
}

/// A socket registered in `Shared::sockets` while it lives; the registry's clone is removed
/// before the socket itself is closed, so an abortive close really sends the RST.
struct Registered<'a> {
    stream: TcpStream,
    id: u64,
    shared: &'a Shared,
}

fn register(shared: &Shared, stream: &TcpStream) -> io::Result<u64> {
    let id = shared.next_socket.fetch_add(1, Ordering::Relaxed);
    lock(&shared.sockets).insert(id, stream.try_clone()?);
    Ok(id)
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(&self.shared.sockets).remove(&self.id);
    }
}

/// A parsed HTTP message head.
#[derive(Debug)]
struct Head {
    /// Request line or status line (without CRLF).
    start: String,
    /// Headers in order, names as received.
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn is_chunked(&self) -> bool {
        self.headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        })
    }

    fn content_length(&self) -> io::Result<Option<usize>> {
        match self.get("content-length") {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| bad(format!("bad Content-Length {v:?}"))),
        }
    }

    /// Serialize, dropping hop-by-hop headers and the given ones, adding `extra`.
    fn serialize(&self, drop: &[&str], extra: &[(&str, String)]) -> Vec<u8> {
        const HOP: [&str; 6] = [
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "upgrade",
            "transfer-encoding",
        ];
        let mut out = String::with_capacity(256);
        out.push_str(&self.start);
        out.push_str("\r\n");
        for (k, v) in &self.headers {
            let lk = k.to_ascii_lowercase();
            if HOP.contains(&lk.as_str()) || drop.contains(&lk.as_str()) {
                continue;
            }
            out.push_str(k);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        for (k, v) in extra {
            out.push_str(k);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Read a message head; `Ok(None)` on EOF before any byte.
fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 {
            if lines.is_empty() && total == 0 {
                return Ok(None);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        total += n;
        if total > MAX_HEAD {
            return Err(bad("message head too large"));
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if line.is_empty() {
            if lines.is_empty() {
                continue; // tolerate stray CRLF before a message
            }
            break;
        }
        lines.push(String::from_utf8(line).map_err(|_| bad("non-UTF-8 header"))?);
    }
    let start = lines.remove(0);
    let mut headers = Vec::with_capacity(lines.len());
    for l in lines {
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line {l:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(Some(Head { start, headers }))
}

/// Decode a chunked body (trailers are discarded).
fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let size = line.trim().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            loop {
                let mut t = String::new();
                if r.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = String::new();
        r.read_line(&mut crlf)?;
    }
}

fn read_exact_vec(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    r.take(n as u64).read_to_end(&mut body)?;
    if body.len() < n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(body)
}

fn record(shared: &Shared, idx: usize, status: u16, outcome: Outcome) {
    if let Some(r) = lock(&shared.state).log.get_mut(idx) {
        r.status = status;
        r.outcome = outcome;
    }
}

fn handle(client: &Registered<'_>, shared: &Shared) {
    let cs = &client.stream;
    let _ = cs.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = cs.set_write_timeout(Some(CLIENT_TIMEOUT));
    let _ = cs.set_nodelay(true);
    let mut reader = BufReader::with_capacity(64 * 1024, cs);
    let head = match read_head(&mut reader) {
        Ok(Some(h)) => h,
        _ => return,
    };
    let mut parts = head.start.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();

    // decide, and log, under one lock: decision order == log order
    let (decision, idx, reset_mode, truncate_mode) = {
        let mut st = lock(&shared.state);
        let f = st.faults;
        let decision = if let Some(a) = st.script.pop_front() {
            a
        } else {
            let x = st.rng.next_f64();
            if x < f.reset {
                Action::Reset
            } else if x < f.reset + f.status_503 {
                Action::Status503
            } else if x < f.reset + f.status_503 + f.truncate_response {
                Action::Truncate
            } else {
                Action::Forward
            }
        };
        st.log.push(RequestRecord {
            method: method.clone(),
            target: target.clone(),
            status: 0,
            outcome: Outcome::Pending,
        });
        (decision, st.log.len() - 1, st.reset_mode, st.truncate_mode)
    };

    if decision == Action::Reset && reset_mode == ResetMode::Rst {
        record(shared, idx, 0, Outcome::Reset);
        abort(cs);
        return;
    }

    // read the request body
    let expects_continue = head
        .get("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects_continue {
        let _ = (&*cs).write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let body = if head.is_chunked() {
        read_chunked(&mut reader)
    } else {
        match head.content_length() {
            Ok(Some(n)) => read_exact_vec(&mut reader, n),
            Ok(None) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    };
    let body = match body {
        Ok(b) => b,
        Err(_) => {
            record(shared, idx, 0, Outcome::ClientError);
            return;
        }
    };

    match decision {
        Action::Reset => {
            // ResetMode::Close: whole request read, clean close without a response
            record(shared, idx, 0, Outcome::Reset);
            let _ = cs.shutdown(Shutdown::Both);
        }
        Action::Status503 => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                 <Message>Please reduce your request rate. (injected by FaultProxy)</Message>\
                 <Resource>{}</Resource><RequestId>faultproxy-{idx}</RequestId></Error>",
                xml_escape(&target)
            );
            let resp = format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n\
                 Content-Length: {}\r\nRetry-After: 0\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
            record(shared, idx, 503, Outcome::Injected503);
            let _ = (&*cs).write_all(resp.as_bytes());
            let _ = (&*cs).flush();
            let _ = cs.shutdown(Shutdown::Write);
        }
        Action::Forward | Action::Truncate => {
            let is_head = method.eq_ignore_ascii_case("HEAD");
            let resp = if shared.stop.load(Ordering::SeqCst) {
                Err(io::Error::other("proxy stopping"))
            } else {
                forward(shared, &head, &body, is_head)
            };
            let (rhead, rbody) = match resp {
                Ok(r) => r,
                Err(e) => {
                    let msg = format!("fault proxy: upstream error: {e}");
                    let resp = format!(
                        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                        msg.len()
                    );
                    record(shared, idx, 502, Outcome::UpstreamError);
                    let _ = (&*cs).write_all(resp.as_bytes());
                    let _ = cs.shutdown(Shutdown::Write);
                    return;
                }
            };
            let status: u16 = rhead
                .start
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            // Keep Content-Length as is for HEAD (it describes the object) and for bodies
            // read by length; set it when the body was chunked or delimited by EOF.
            let no_body = is_head || status == 204 || status == 304 || (100..200).contains(&status);
            let mut extra: Vec<(&str, String)> = Vec::new();
            let mut drop: Vec<&str> = Vec::new();
            if !no_body {
                drop.push("content-length");
                extra.push(("Content-Length", rbody.len().to_string()));
            }
            extra.push(("Connection", "close".to_string()));
            let out_head = rhead.serialize(&drop, &extra);

            if decision == Action::Truncate {
                record(shared, idx, status, Outcome::Truncated);
                let mut w = cs;
                if truncate_mode == TruncateMode::Auto && !no_body && !rbody.is_empty() {
                    let _ = w.write_all(&out_head);
                    let _ = w.write_all(&rbody[..rbody.len() / 2]);
                } else {
                    // cut inside the header block: status line plus half of the headers
                    let first = out_head
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(0, |p| p + 1);
                    let cut = first + (out_head.len() - 4 - first) / 2;
                    let _ = w.write_all(&out_head[..cut]);
                }
                let _ = w.flush();
                let _ = cs.shutdown(Shutdown::Write);
            } else {
                record(shared, idx, status, Outcome::Forwarded);
                let mut w = cs;
                let _ = w.write_all(&out_head);
                if !no_body {
                    let _ = w.write_all(&rbody);
                }
                let _ = w.flush();
                let _ = cs.shutdown(Shutdown::Write);
            }
        }
    }
}

/// Send the request upstream on a fresh connection and read the whole response.
fn forward(
    shared: &Shared,
    head: &Head,
    body: &[u8],
    is_head: bool,
) -> io::Result<(Head, Vec<u8>)> {
    let stream = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(10))?;
    let up = Registered {
        id: register(shared, &stream)?,
        stream,
        shared,
    };
    if shared.stop.load(Ordering::SeqCst) {
        // registered after Drop's sweep (which runs after `stop` is set): give up now
        return Err(io::Error::other("proxy stopping"));
    }
    let us = &up.stream;
    us.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    us.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
    us.set_nodelay(true)?;
    let mut extra: Vec<(&str, String)> = Vec::new();
    let had_body_framing = head.is_chunked() || head.get("content-length").is_some();
    if had_body_framing || !body.is_empty() {
        extra.push(("Content-Length", body.len().to_string()));
    }
    extra.push(("Connection", "close".to_string()));
    let out = head.serialize(&["content-length", "expect"], &extra);
    let mut w = us;
    w.write_all(&out)?;
    w.write_all(body)?;
    w.flush()?;

    let mut reader = BufReader::with_capacity(64 * 1024, us);
    loop {
        let rhead =
            read_head(&mut reader)?.ok_or_else(|| bad("upstream closed without a response"))?;
        let status: u16 = rhead
            .start
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {:?}", rhead.start)))?;
        if (100..200).contains(&status) {
            continue; // interim response (e.g. 100 Continue): skip
        }
        let rbody = if is_head || status == 204 || status == 304 {
            Vec::new()
        } else if rhead.is_chunked() {
            read_chunked(&mut reader)?
        } else if let Some(n) = rhead.content_length()? {
            read_exact_vec(&mut reader, n)?
        } else {
            let mut b = Vec::new();
            reader.read_to_end(&mut b)?;
            b
        };
        return Ok((rhead, rbody));
    }
}

/// Close with a TCP RST (SO_LINGER 0), so the client sees `ECONNRESET`.
fn abort(s: &TcpStream) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let l = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: valid fd owned by `s`; we pass a properly sized, initialized linger struct.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &l as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(unix))]
    {
        let _ = s.shutdown(Shutdown::Both);
    }
    // the socket is closed (sending the RST) when the caller's `Registered` is dropped
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
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
}

/// The proxy under object_store's real S3 client (`cargo test -p flowlib-testkit --features aws
/// --lib fault_proxy`, with `scripts/services.sh start` and its env).
#[cfg(all(test, feature = "aws"))]
mod object_store_tests {
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
}
