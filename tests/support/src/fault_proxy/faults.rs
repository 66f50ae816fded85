//! The fault rules: rates, modes, scripted actions and the PRNG that draws the faults.

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
/// The fate of one request, for [`FaultProxy::script`](super::FaultProxy::script).
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
/// xorshift64* : tiny, deterministic, good enough for fault decisions.
pub(super) struct XorShift(u64);

impl XorShift {
    pub(super) fn new(seed: u64) -> Self {
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
    pub(super) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
