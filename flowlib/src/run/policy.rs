//! Retry and timeout policy: when a failed attempt is tried again, and when a running one
//! is fenced.

use std::time::{Duration, Instant};

use crate::flow::graph::format_ms;
use crate::flow::Step;

/// After attempt `attempt` (0 first) of `step` failed: the delay before the next attempt
/// and the total number of attempts, or `None` when the retries are used up. The delay
/// doubles with each retry.
pub(crate) fn retry_after(step: &Step, attempt: u32) -> Option<(Duration, u32)> {
    let policy = step.retry?;
    (attempt < policy.times).then(|| {
        let delay = policy.delay_ms.saturating_mul(1u64 << attempt.min(16));
        (Duration::from_millis(delay), policy.times + 1)
    })
}

/// After `used` platform failures of a task of `step` (the machine or the engine failed,
/// not the code): the delay before the next attempt and the platform budget, or `None`
/// when it is used up. Platform retries do not use up the step's `#[retry(times)]`.
pub(crate) fn platform_retry_after(step: &Step, used: u32) -> Option<(Duration, u32)> {
    let budget = step.platform_retries();
    (used < budget).then(|| {
        let delay = 1_000u64.saturating_mul(1u64 << used.min(6));
        (Duration::from_millis(delay), budget + 1)
    })
}

/// When an attempt of `step` started at `started` must be fenced.
pub(crate) fn deadline(step: &Step, started: Instant) -> Option<Instant> {
    step.timeout_ms
        .map(|ms| started + Duration::from_millis(ms))
}

/// The error a fenced attempt of `step` records.
pub(crate) fn timeout_error(step: &Step) -> String {
    format!(
        "timed out after {}",
        format_ms(step.timeout_ms.unwrap_or(0))
    )
}
