//! What the endpoints share while the emulator runs: its configuration and clock, the tokens
//! STS and IAM Credentials issued, the request log, and the bucket.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use rand::distr::{Alphanumeric, SampleString};
use time::OffsetDateTime;

use crate::{AwsIdentity, EmulatorConfig, Endpoint, LogEntry, Storage, gcs};

/// A federated access token that STS issued.
pub(crate) struct FederatedToken {
    pub(crate) expires: OffsetDateTime,
    pub(crate) scopes: Vec<String>,
}

/// A service-account access token that IAM Credentials issued.
pub(crate) struct AccessToken {
    pub(crate) expires: OffsetDateTime,
    pub(crate) scopes: Vec<String>,
}

/// Everything the endpoints share: the configuration, the clock, the tokens issued, the log.
pub(crate) struct State {
    pub(crate) config: EmulatorConfig,
    pub(crate) now: Mutex<Option<OffsetDateTime>>,
    pub(crate) federated_tokens: Mutex<HashMap<String, FederatedToken>>,
    pub(crate) access_tokens: Mutex<HashMap<String, AccessToken>>,
    pub(crate) log: Mutex<Vec<LogEntry>>,
    /// When each request's head arrived, in order.
    pub(crate) arrivals: Mutex<Vec<(Endpoint, Instant)>>,
    pub(crate) gcs: gcs::GcsState,
    /// Temporary keys the emulated AWS STS issued (assumed roles).
    pub(crate) assumed: Mutex<Vec<AwsIdentity>>,
    /// The emulated S3's objects.
    pub(crate) s3: Mutex<Vec<crate::S3Object>>,
}

/// A poisoned lock only means another request panicked; the data is still consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    pub(crate) fn new(config: EmulatorConfig, storage_dir: Option<&Path>) -> anyhow::Result<Self> {
        Ok(State {
            s3: Mutex::new(config.s3_objects.clone()),
            now: Mutex::new(config.now),
            gcs: gcs::GcsState::new(
                storage_dir,
                config.storage == Storage::Benchmark,
                &config.faults,
            )?,
            arrivals: Mutex::default(),
            config,
            federated_tokens: Mutex::default(),
            access_tokens: Mutex::default(),
            log: Mutex::default(),
            assumed: Mutex::default(),
        })
    }

    /// Every AWS identity AWS would know: the configured ones and the roles assumed since.
    pub(crate) fn identities(&self) -> Vec<AwsIdentity> {
        let mut all = self.config.identities.clone();
        all.extend(lock(&self.assumed).iter().cloned());
        all
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        lock(&self.now).unwrap_or_else(OffsetDateTime::now_utc)
    }
}

/// An opaque token in the style of Google's (`ya29.` and URL-safe characters).
pub(crate) fn new_token(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        Alphanumeric.sample_string(&mut rand::rng(), 120)
    )
}
