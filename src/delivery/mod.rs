//! The delivery loop. Small objects go in one `multipart` request; large ones (or streams of
//! unknown length) through a resumable session in chunks. Memory stays bounded by one chunk.
//!
//! What "delivered" means: GCS created the object after checking the CRC32C (and MD5) we
//! computed from the bytes we read. A request whose answer was lost is retried; a retry that
//! meets 412 means the lost attempt most likely landed (its checksum already checked by GCS),
//! so the receipt says `delivered-unconfirmed` instead of failing. A resumable session is asked
//! for its state instead, and a finished session answers with the object itself.

mod checksum;
mod handshake;
pub mod json_api;
mod multipart;
mod receipt;
mod resumable;
mod source;

pub use checksum::{Checksums, crc32c_append};
pub use handshake::handshake;
pub use json_api::{ObjectResource, ObjectSpec};
pub use receipt::{Receipt, SourceReceipt, Status};
pub use source::ByteSource;

use crate::config::Destination;
use crate::delivery::json_api as upload;
use crate::error::{Error, Step};
use crate::io::{Io, Response, TransportError};
use crate::retry::Attempts;
use crate::secret::Secret;
use crate::wif::token::TokenSource;

/// Counts what a delivery cost.
#[derive(Default)]
struct Tally {
    requests: u32,
    retries: u32,
}

/// The default content type, as GCS and gsutil use.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The object to create for `name` as a host or an application gives it: the destination's
/// prefix goes in front, and the content type defaults to [`DEFAULT_CONTENT_TYPE`].
pub fn object_spec(
    destination: &Destination,
    name: &str,
    size: Option<u64>,
    content_type: Option<String>,
    metadata: impl IntoIterator<Item = (String, String)>,
) -> ObjectSpec {
    ObjectSpec {
        name: format!("{}{name}", destination.prefix),
        size,
        content_type: content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
        metadata: metadata.into_iter().collect(),
        expected_crc32c: None,
        session: None,
    }
}

/// Starts a resumable session for `spec` and returns its URL, for a host that records it
/// (a delivery ledger) before any byte is sent and then delivers with [`ObjectSpec::session`]
/// set, so that a run killed midway resumes where GCS stands. The URL lets whoever holds it
/// upload that object: it is kept as privately as the destination's configuration.
pub fn start_session(
    io: &mut dyn Io,
    tokens: &mut TokenSource,
    destination: &Destination,
    spec: &ObjectSpec,
) -> Result<String, Error> {
    upload::validate_object(spec)?;
    Delivery {
        io,
        tokens,
        destination,
        spec,
        tally: &mut Tally::default(),
    }
    .start_session()
}

/// Uploads the handshake object ([`handshake`]) through the whole keyless flow.
pub fn verify(
    io: &mut dyn Io,
    tokens: &mut TokenSource,
    destination: &Destination,
) -> Result<Receipt, Error> {
    let (spec, body) = handshake(destination, io.now(), io.random_u64());
    deliver(io, tokens, destination, &spec, &mut &body[..])
}

/// Streams `source` into the bucket as `spec`.
pub fn deliver(
    io: &mut dyn Io,
    tokens: &mut TokenSource,
    destination: &Destination,
    spec: &ObjectSpec,
    source: &mut dyn ByteSource,
) -> Result<Receipt, Error> {
    upload::validate_object(spec)?;
    let started = io.now();
    let mut tally = Tally::default();
    let mut delivery = Delivery {
        io,
        tokens,
        destination,
        spec,
        tally: &mut tally,
    };
    let (object, checksums, kind) = match spec.size {
        Some(size) if spec.session.is_none() && size <= destination.upload.single_request_limit => {
            let (object, checksums) = delivery.multipart(source, size)?;
            (object, checksums, "multipart")
        }
        _ => {
            let (object, checksums) = delivery.resumable(source)?;
            (Some(object), checksums, "resumable")
        }
    };
    let elapsed = io.now() - started;
    if let Some(reported) = object.as_ref().and_then(|o| o.crc32c.as_deref())
        && reported != checksums.crc32c()
    {
        return Err(Error::new(
            Step::Upload,
            format!(
                "GCS reports CRC32C {} for {} but {} was sent",
                crate::error::quote(reported, 100),
                spec.name,
                checksums.crc32c()
            ),
        ));
    }
    // Resumable uploads do not compute the MD5 (see `checksum`): the receipt has GCS's.
    let md5_hash = checksums
        .md5()
        .or_else(|| object.as_ref().and_then(|o| o.md5_hash.clone()))
        .unwrap_or_default();
    Ok(Receipt {
        status: if object.is_some() {
            Status::Delivered
        } else {
            Status::DeliveredUnconfirmed
        },
        bucket: destination.bucket.clone(),
        name: spec.name.clone(),
        generation: object.map(|o| o.generation),
        size: checksums.len(),
        crc32c: checksums.crc32c(),
        md5_hash,
        upload: kind,
        requests: tally.requests,
        retries: tally.retries,
        elapsed_ms: u64::try_from(elapsed.whole_milliseconds()).unwrap_or(0),
        source: None,
    })
}

/// Why an attempt failed, and what to do next.
enum Failure {
    /// Try again after a pause; `maybe_landed` when the request may have reached GCS.
    Retry {
        error: Error,
        maybe_landed: bool,
    },
    /// The token was refused: renew it and try again at once (once).
    Renew(Error),
    Fatal(Error),
}

/// Where one request's attempts stand.
struct Tries {
    attempts: Attempts,
    renewed: bool,
}

struct Delivery<'a> {
    io: &'a mut dyn Io,
    tokens: &'a mut TokenSource,
    destination: &'a Destination,
    spec: &'a ObjectSpec,
    tally: &'a mut Tally,
}

impl Delivery<'_> {
    fn token(&mut self) -> Result<Secret, Error> {
        Ok(self.tokens.access_token(self.io, self.destination)?.token)
    }

    fn send(&mut self, head: &http::Request<()>, body: &[u8]) -> Result<Response, TransportError> {
        self.tally.requests += 1;
        self.io
            .send_borrowed(head, body, self.destination.upload.timeout)
    }

    fn transport_failure(&self, e: TransportError) -> Failure {
        let error = Error::no_answer(
            Step::Upload,
            format!("the upload of {} got no answer: {e}", self.spec.name),
            &e,
        );
        if error.transient {
            Failure::Retry {
                error,
                maybe_landed: true,
            }
        } else {
            Failure::Fatal(error)
        }
    }

    fn status_failure(&self, response: &Response) -> Failure {
        let error = upload::upload_error(response, &self.spec.name);
        match response.status().as_u16() {
            401 => Failure::Renew(error),
            _ if error.transient => Failure::Retry {
                error,
                maybe_landed: false,
            },
            _ => Failure::Fatal(error),
        }
    }

    /// The bytes read must have the CRC32C their source keeps, if it keeps one: checked before
    /// the request that would create the object.
    fn check_source_crc32c(&self, computed: &str) -> Result<(), Error> {
        match &self.spec.expected_crc32c {
            Some(expected) if expected != computed => Err(Error::new(
                Step::Read,
                format!(
                    "the source's CRC32C is {expected} but the bytes read have {computed}; \
                     nothing was created for {}",
                    self.spec.name
                ),
            )
            .with_fix(
                "the source's stored checksum does not match its bytes: check the source \
                 object (re-upload it) before delivering it again",
            )),
            _ => Ok(()),
        }
    }

    fn tries(&self) -> Tries {
        Tries {
            attempts: Attempts::start(self.io, &self.destination.backoff),
            renewed: false,
        }
    }

    /// Gets ready for another attempt after `failure`: renews the token (once) or pauses
    /// (with backoff); or gives up with the error.
    fn recover(&mut self, failure: Failure, tries: &mut Tries) -> Result<(), Error> {
        match failure {
            Failure::Fatal(error) => Err(error),
            Failure::Renew(error) if tries.renewed => Err(error),
            Failure::Renew(_) => {
                tries.renewed = true;
                self.tokens.invalidate(self.destination);
                Ok(())
            }
            Failure::Retry { error, .. } => {
                tries.attempts.pause(self.io, error)?;
                self.tally.retries += 1;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
