//! One connection: accept, decide the fault, forward upstream, answer (or not) the client.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::http::{bad, read_chunked, read_exact_vec, read_head, Head};
use super::{lock, Action, Outcome, RequestRecord, ResetMode, Shared, TruncateMode};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);

pub(super) fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
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
