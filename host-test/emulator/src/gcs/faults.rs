//! Faults that Cloud Storage requests meet, scripted or random, for delivery tests, and the
//! answer of a status fault.

use std::collections::VecDeque;
use std::time::Duration;

use http::StatusCode;
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};

use super::errors::gcs_error;
use crate::reply::Reply;

/// One fault, applied to one Cloud Storage request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (503, 429, 500, ...) in GCS's error shape, without doing anything
    /// (the body is read and ignored).
    Status(u16),
    /// Read this many body bytes (fewer if the body is shorter), then drop the connection
    /// without answering. A resumable chunk keeps what it received up to the last 256 KiB
    /// boundary of the object; a multipart or media upload keeps nothing.
    ResetMidBody { after_bytes: u64 },
    /// Do the request completely (the object or chunk is committed), then drop the connection
    /// without answering.
    LoseResponseAfterCommit,
    /// Do the request completely, then wait this long before answering.
    Slow(Duration),
}

/// Random faults: each Cloud Storage request that no scripted fault is left for meets one with
/// `probability`, picked evenly among `Status(503)`, `Status(429)`, `ResetMidBody` (at a random
/// byte of the body) and `LoseResponseAfterCommit`. The same seed gives the same sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomFaults {
    pub seed: u64,
    pub probability: f64,
}

/// The faults Cloud Storage requests meet: `scripted` ones first, one per request in order, then
/// `random` ones if set. The default is no faults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultPlan {
    pub scripted: Vec<Fault>,
    pub random: Option<RandomFaults>,
}

impl FaultPlan {
    pub fn scripted(faults: impl IntoIterator<Item = Fault>) -> Self {
        FaultPlan {
            scripted: faults.into_iter().collect(),
            random: None,
        }
    }

    pub fn random(seed: u64, probability: f64) -> Self {
        FaultPlan {
            scripted: Vec::new(),
            random: Some(RandomFaults { seed, probability }),
        }
    }
}

/// The plan as it is being consumed.
pub(super) struct Faults {
    scripted: VecDeque<Fault>,
    random: Option<(f64, StdRng)>,
}

/// Where a random reset lands when the body's length is not declared.
const RANDOM_RESET_WITHOUT_LENGTH: u64 = 1 << 20;

impl Faults {
    pub(super) fn new(plan: &FaultPlan) -> Self {
        Faults {
            scripted: plan.scripted.iter().cloned().collect(),
            random: plan
                .random
                .map(|r| (r.probability.clamp(0.0, 1.0), StdRng::seed_from_u64(r.seed))),
        }
    }

    /// The fault for the next request, whose body declares `content_length` bytes.
    pub(super) fn next(&mut self, content_length: Option<u64>) -> Option<Fault> {
        if let Some(fault) = self.scripted.pop_front() {
            return Some(fault);
        }
        let (probability, rng) = self.random.as_mut()?;
        if !rng.random_bool(*probability) {
            return None;
        }
        Some(match rng.random_range(0..4u8) {
            0 => Fault::Status(503),
            1 => Fault::Status(429),
            2 => Fault::ResetMidBody {
                after_bytes: rng
                    .random_range(0..content_length.unwrap_or(RANDOM_RESET_WITHOUT_LENGTH).max(1)),
            },
            _ => Fault::LoseResponseAfterCommit,
        })
    }
}

/// The answer of a [`Fault::Status`].
pub(super) fn status_fault(code: u16) -> Reply {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let (reason, message) = match status.as_u16() {
        429 => (
            "rateLimitExceeded",
            "The rate of requests exceeds the rate limit. Please reduce your request rate.",
        ),
        500 => ("backendError", "Backend Error"),
        503 => ("backendError", "Service Unavailable"),
        _ => ("backendError", status.canonical_reason().unwrap_or("Error")),
    };
    let mut reply = gcs_error(status, reason, message);
    reply.outcome = format!("{} (fault)", reply.outcome);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_first_then_random_and_reproducible() {
        let plan = FaultPlan {
            scripted: vec![Fault::Status(500)],
            random: Some(RandomFaults {
                seed: 7,
                probability: 0.5,
            }),
        };
        let draw = |plan: &FaultPlan| {
            let mut faults = Faults::new(plan);
            (0..200)
                .map(|_| faults.next(Some(1000)))
                .collect::<Vec<_>>()
        };
        let first = draw(&plan);
        assert_eq!(first, draw(&plan));
        assert_eq!(first[0], Some(Fault::Status(500)));
        let hit = first[1..].iter().flatten().count();
        assert!((60..140).contains(&hit), "{hit}");
        for kind in [
            |f: &Fault| *f == Fault::Status(503),
            |f: &Fault| *f == Fault::Status(429),
            |f: &Fault| matches!(f, Fault::ResetMidBody { after_bytes } if *after_bytes < 1000),
            |f: &Fault| *f == Fault::LoseResponseAfterCommit,
        ] {
            assert!(first.iter().flatten().any(kind), "{first:?}");
        }
        assert!(draw(&FaultPlan::default()).iter().all(Option::is_none));
    }
}
