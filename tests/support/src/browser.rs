//! Headless Chromium driven through the DevTools protocol, for the HTML report's tests and
//! benchmark: open a file, evaluate JavaScript, collect exceptions and console errors,
//! take a screenshot.
//!
//! A small client over one WebSocket (`tungstenite`) rather than `headless_chrome` or
//! `chromiumoxide`: the tests need six protocol methods, and those crates generate the whole
//! protocol at build time (tens of thousands of lines on every CI build) or bring an async
//! runtime of their own.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The Chromium binary: `$FLOWLIB_CHROMIUM`, else `chromium` or `chromium-browser` on the
/// `PATH`.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FLOWLIB_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// The Chromium binary, or `None` after a loud warning when there is none here. In CI
/// (`FLOWLIB_CI=1`, where `scripts/test-all.sh` installs Debian's `chromium`) a missing
/// browser fails the test instead.
pub fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    match chromium() {
        Some(p) => Some(p),
        None if std::env::var("FLOWLIB_CI").as_deref() == Ok("1") => {
            panic!("{test}: no Chromium (Debian's `chromium`), and CI requires it")
        }
        None => {
            eprintln!(
                "WARNING: {test} SKIPPED: no Chromium here (apt-get install chromium, or set FLOWLIB_CHROMIUM)"
            );
            None
        }
    }
}

/// One headless Chromium with one page, attached through the DevTools protocol.
#[derive(Debug)]
pub struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    /// Every protocol event received so far.
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

/// How long one protocol call may take before the test fails (a loaded machine is slow,
/// a hung browser must still not hang the suite).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

impl Browser {
    /// Start `exe` headless (its own profile directory) and attach to a new blank page of
    /// `width`×`height` CSS pixels.
    pub fn launch(exe: &Path, width: u32, height: u32) -> Result<Browser, String> {
        let profile = tempfile::tempdir().map_err(|e| format!("profile dir: {e}"))?;
        let mut child = Command::new(exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--remote-debugging-port=0",
                "--allow-file-access-from-files",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                return Err("Chromium did not print its DevTools URL within 60 s".into());
            }
        };
        let (ws, _) =
            tungstenite::connect(url.as_str()).map_err(|e| format!("connect {url}: {e}"))?;
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| format!("socket timeout: {e}"))?;
        }
        let mut b = Browser {
            child,
            ws,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
            _profile: profile,
        };
        let target = b.call_browser("Target.createTarget", json!({"url": "about:blank"}))?;
        let target = target["targetId"]
            .as_str()
            .ok_or("no targetId")?
            .to_string();
        let attached = b.call_browser(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        )?;
        b.session = attached["sessionId"]
            .as_str()
            .ok_or("no sessionId")?
            .to_string();
        for m in ["Page.enable", "Runtime.enable", "Log.enable"] {
            b.call(m, json!({}))?;
        }
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )?;
        Ok(b)
    }

    fn send(&mut self, method: &str, params: Value, session: bool) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if session {
            msg["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .map_err(|e| format!("{method}: send: {e}"))?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let v = self.read(deadline, method)?;
            if v["id"].as_u64() == Some(id) {
                if let Some(err) = v.get("error") {
                    return Err(format!("{method}: {err}"));
                }
                return Ok(v["result"].clone());
            }
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
    }

    /// The next message, waiting until `deadline`.
    fn read(&mut self, deadline: Instant, what: &str) -> Result<Value, String> {
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    return serde_json::from_str(t.as_str())
                        .map_err(|e| format!("{what}: bad JSON: {e}"))
                }
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() > deadline {
                        return Err(format!(
                            "{what}: no answer from Chromium within {CALL_TIMEOUT:?}"
                        ));
                    }
                }
                Err(e) => return Err(format!("{what}: {e}")),
            }
        }
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.send(method, params, false)
    }

    /// Call a protocol method on the page.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.send(method, params, true)
    }

    /// Open `url` and wait for its load event and for `ready` (a JavaScript expression) to
    /// be true; returns the time from the navigation to then.
    pub fn open(&mut self, url: &str, ready: &str) -> Result<Duration, String> {
        self.events
            .retain(|e| e["method"].as_str() != Some("Page.loadEventFired"));
        let t0 = Instant::now();
        let r = self.call("Page.navigate", json!({"url": url}))?;
        if let Some(e) = r.get("errorText") {
            return Err(format!("navigate {url}: {e}"));
        }
        let deadline = t0 + CALL_TIMEOUT;
        while !self
            .events
            .iter()
            .any(|e| e["method"].as_str() == Some("Page.loadEventFired"))
        {
            let v = self.read(deadline, "waiting for the load event")?;
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
        while self.eval(ready)? != json!(true) {
            if Instant::now() > deadline {
                return Err(format!("{url}: `{ready}` never became true"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(t0.elapsed())
    }

    /// Evaluate `expr` in the page and return its value (promises are awaited); a thrown
    /// exception is an error.
    pub fn eval(&mut self, expr: &str) -> Result<Value, String> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(format!("`{expr}` threw: {e}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Uncaught exceptions, `console.error` calls and error log entries seen so far.
    pub fn errors(&mut self) -> Vec<String> {
        // Let queued events arrive: one cheap round trip.
        let _ = self.eval("0");
        self.events
            .iter()
            .filter_map(|e| match e["method"].as_str()? {
                "Runtime.exceptionThrown" => {
                    Some(format!("exception: {}", e["params"]["exceptionDetails"]))
                }
                "Runtime.consoleAPICalled" if e["params"]["type"] == "error" => {
                    Some(format!("console.error: {}", e["params"]["args"]))
                }
                "Log.entryAdded" if e["params"]["entry"]["level"] == "error" => {
                    Some(format!("log: {}", e["params"]["entry"]["text"]))
                }
                _ => None,
            })
            .collect()
    }

    /// Save a PNG screenshot of the whole page to `path`.
    pub fn screenshot(&mut self, path: &Path) -> Result<(), String> {
        use base64::Engine;
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        )?;
        let data = r["data"].as_str().ok_or("no screenshot data")?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| format!("screenshot: {e}"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `file://` URL of a local path.
pub fn file_url(path: &Path) -> String {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    format!("file://{}", abs.display())
}

/// Where tests keep what they produce for people to look at (screenshots):
/// `target/test-artifacts/`.
pub fn test_artifacts() -> PathBuf {
    let dir = crate::target_dir()
        .parent()
        .map(|p| p.join("test-artifacts"))
        .unwrap_or_else(|| PathBuf::from("test-artifacts"));
    let _ = std::fs::create_dir_all(&dir);
    dir
}
