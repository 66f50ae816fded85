//! What the proxy records: per-request outcomes and counters.

use std::collections::BTreeMap;

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

/// Counters (a snapshot; see [`FaultProxy::stats`](super::FaultProxy::stats)).
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
