//! Google's retry strategy: retry transient failures (408, 429, 5xx, connection trouble) with
//! truncated exponential backoff and jitter, within an overall deadline; fail at once otherwise.

use std::time::Duration;

use crate::error::Error;
use crate::io::Io;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max_delay: Duration,
    pub max_attempts: u32,
    /// No new attempt starts after this much time since the first.
    pub deadline: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max_delay: Duration::from_secs(32),
            max_attempts: 6,
            deadline: Duration::from_secs(120),
        }
    }
}

impl Backoff {
    /// The default strategy, starting from `initial` instead of one second.
    pub fn starting_at(initial: Duration) -> Self {
        Backoff {
            initial,
            max_delay: Backoff::default().max_delay.max(initial),
            ..Backoff::default()
        }
    }

    /// The pause before retry number `retry` (0-based): `initial * 2^retry` plus up to
    /// `initial` of jitter, capped at `max_delay`.
    pub fn delay(&self, retry: u32, random: u64) -> Duration {
        let base = self.initial.saturating_mul(1u32 << retry.min(16));
        let jitter_ms = u64::try_from(self.initial.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let jitter = Duration::from_millis(random % jitter_ms);
        (base + jitter).min(self.max_delay)
    }
}

/// HTTP statuses worth another attempt.
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Where a series of attempts stands: when it began and how many retries it took. Every retry
/// loop of the flow (tokens, metadata, uploads) pauses through [`Attempts::pause`], so give-up,
/// counting and the announcement on stderr are the same everywhere.
#[derive(Clone, Copy, Debug)]
pub struct Attempts {
    backoff: Backoff,
    started: time::OffsetDateTime,
    retries: u32,
}

impl Attempts {
    pub fn start(io: &dyn Io, backoff: &Backoff) -> Self {
        Attempts {
            backoff: *backoff,
            started: io.now(),
            retries: 0,
        }
    }

    /// Retries taken so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// After `error` (worth another attempt), announces the retry and pauses; or gives up,
    /// returning `error` with the number of attempts made.
    pub fn pause(&mut self, io: &mut dyn Io, mut error: Error) -> Result<(), Error> {
        let delay = self.backoff.delay(self.retries, io.random_u64());
        let elapsed = io.now() - self.started;
        if self.retries + 1 >= self.backoff.max_attempts || elapsed + delay > self.backoff.deadline
        {
            error.message = format!(
                "{} (gave up after {} attempts)",
                error.message,
                self.retries + 1
            );
            return Err(error);
        }
        io.log(&format!(
            "{} failed: {}; retrying in {:.1} s (attempt {} of {})",
            error.step.name(),
            error.message,
            delay.as_secs_f64(),
            self.retries + 2,
            self.backoff.max_attempts
        ));
        io.sleep(delay);
        self.retries += 1;
        Ok(())
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the backoff gives up. Returns the result
/// and how many retries it took.
pub fn retry<T>(
    io: &mut dyn Io,
    backoff: &Backoff,
    mut attempt: impl FnMut(&mut dyn Io) -> Result<T, Error>,
) -> (Result<T, Error>, u32) {
    let mut attempts = Attempts::start(io, backoff);
    loop {
        let error = match attempt(io) {
            Ok(value) => return (Ok(value), attempts.retries),
            Err(error) => error,
        };
        if !error.transient {
            return (Err(error), attempts.retries);
        }
        if let Err(error) = attempts.pause(io, error) {
            return (Err(error), attempts.retries);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Step;
    use crate::testing::FakeIo;

    #[test]
    fn delays_grow_and_are_capped() {
        let b = Backoff::default();
        assert_eq!(b.delay(0, 0), Duration::from_secs(1));
        assert_eq!(b.delay(1, 999), Duration::from_millis(2999));
        assert_eq!(b.delay(3, 0), Duration::from_secs(8));
        assert_eq!(b.delay(10, 0), Duration::from_secs(32));
    }

    #[test]
    fn transient_errors_are_retried_until_success() {
        let mut io = FakeIo::new();
        let mut calls = 0;
        let (result, retries) = retry(&mut io, &Backoff::default(), |_| {
            calls += 1;
            if calls < 3 {
                Err(Error::new(Step::StsExchange, "503").transient())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(result.unwrap(), 3);
        assert_eq!(retries, 2);
        assert_eq!(io.slept.len(), 2);
        assert_eq!(io.logged.len(), 2, "retries are never silent");
        assert!(
            io.logged[0].contains("retrying in 1.0 s (attempt 2 of 6)"),
            "{:?}",
            io.logged
        );
    }

    #[test]
    fn permanent_errors_fail_at_once() {
        let mut io = FakeIo::new();
        let (result, retries) = retry(&mut io, &Backoff::default(), |_| -> Result<(), _> {
            Err(Error::new(Step::StsExchange, "invalid_target"))
        });
        assert!(result.is_err());
        assert_eq!(retries, 0);
        assert!(io.slept.is_empty());
    }

    #[test]
    fn gives_up_and_says_so() {
        let mut io = FakeIo::new();
        let backoff = Backoff {
            max_attempts: 3,
            ..Backoff::default()
        };
        let (result, retries) = retry(&mut io, &backoff, |_| -> Result<(), _> {
            Err(Error::new(Step::StsExchange, "Google STS answered 503").transient())
        });
        assert_eq!(retries, 2);
        assert!(
            result
                .unwrap_err()
                .message
                .ends_with("(gave up after 3 attempts)")
        );
    }
}
