//! The Kubernetes test API server (`tests/support/k8s_api.py`: the real REST/JSON protocol,
//! pods run as local processes) as the tests and the benchmarks start it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `k8s_api.py`, stopped (with every pod process) on drop.
#[derive(Debug)]
pub struct K8sApiServer {
    child: Child,
    state: PathBuf,
    port: u16,
}

impl K8sApiServer {
    /// Start it with its state (kubeconfig, created manifests, pod logs) in `state`, with
    /// more `k8s_api.py` arguments (`--node-cpu 8`, `--node-memory 32Mi`).
    pub fn start(state: &Path, extra: &[&str]) -> K8sApiServer {
        let _ = std::fs::remove_dir_all(state);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s_api.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg("--state")
            .arg(state)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/support/k8s_api.py (python3)");
        let mut out = child.stdout.take().expect("piped");
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while out.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
            line.push(b[0]);
        }
        let line = String::from_utf8_lossy(&line).into_owned();
        let port = line
            .strip_prefix("listening on ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("k8s_api.py did not start: {line:?}"));
        K8sApiServer {
            child,
            state: state.to_path_buf(),
            port,
        }
    }

    /// Its state directory (`manifests/` holds every Job created, as created).
    pub fn state(&self) -> &Path {
        &self.state
    }

    /// The kubeconfig that points at it.
    pub fn kubeconfig(&self) -> PathBuf {
        self.state.join("kubeconfig")
    }

    /// One HTTP request; the response body.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        let body = body.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read");
        resp.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or(resp)
    }
}

impl Drop for K8sApiServer {
    fn drop(&mut self) {
        // SIGTERM: the server kills its pods' processes before it exits.
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}
