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

mod conn;
mod faults;
mod http;
mod stats;

#[cfg(all(test, feature = "aws"))]
mod object_store_tests;
#[cfg(test)]
mod tests;

pub use faults::{Action, Faults, ResetMode, TruncateMode};
pub use stats::{Outcome, RequestRecord, Stats};

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use conn::accept_loop;
use faults::XorShift;

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
