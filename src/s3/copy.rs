//! S3 → Cloud Storage: an object read with the pipeline's own credentials, streamed into the
//! partner's bucket, its S3 checksum held against the bytes read.

use super::reader::{self, Access, S3Reader};
use super::request::S3Endpoint;
use super::uri::S3Uri;
use crate::config::Destination;
use crate::delivery::{self, Receipt, SourceReceipt};
use crate::error::Error;
use crate::io::Io;
use crate::wif::token::TokenSource;

/// One object of an S3 source and the name it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub source: S3Uri,
    /// The object name, before the destination's prefix.
    pub name: String,
    pub size: Option<u64>,
}

/// How the pipeline reads S3 for `destination`: its own credentials (not the partner's
/// role), starting in the destination's region.
fn access(
    io: &mut dyn Io,
    tokens: &mut TokenSource,
    destination: &Destination,
) -> Result<Access, Error> {
    let (credentials, region) = tokens.pipeline_credentials(io, destination)?;
    Ok(Access {
        endpoint: S3Endpoint::from_env(io)?,
        region,
        credentials: credentials.credentials,
        backoff: destination.backoff,
    })
}

/// The objects `uri` stands for: itself, named by the last part of its key; or every object
/// under the prefix, named by its key relative to the prefix.
pub fn plan(
    io: &mut dyn Io,
    tokens: &mut TokenSource,
    destination: &Destination,
    uri: &S3Uri,
) -> Result<Vec<Planned>, Error> {
    let mut access = access(io, tokens, destination)?;
    if !uri.is_prefix() {
        // Its size decides how it is uploaded (a host journals a resumable session before the
        // first byte): GetObject's answer says it, and the body is left unread. A missing
        // object or a refusal is known here, before anything is sent.
        let size = S3Reader::open(io, &access, uri)?.info().size;
        let name = uri.key.rsplit('/').next().unwrap_or(&uri.key).to_owned();
        return Ok(vec![Planned {
            source: uri.clone(),
            name,
            size: Some(size),
        }]);
    }
    let objects = reader::list(io, &mut access, uri)?;
    Ok(objects
        .into_iter()
        // A key equal to the prefix has no name below it.
        .filter(|(key, _)| !uri.relative(key).is_empty())
        .map(|(key, size)| Planned {
            name: uri.relative(&key).to_owned(),
            source: S3Uri {
                bucket: uri.bucket.clone(),
                key,
            },
            size: Some(size),
        })
        .collect())
}

/// The object an S3 object becomes: its name (before the destination's prefix), content type
/// and metadata, and the resumable session to continue, if one was started for it.
pub struct Target {
    pub name: String,
    pub content_type: Option<String>,
    pub metadata: Vec<(String, String)>,
    pub session: Option<String>,
}

/// Streams the S3 object `source` into the bucket as `target`. When S3 keeps the object's own
/// CRC32C, the bytes read must have it, and GCS checks the same value: a mismatch creates
/// nothing and names both values.
pub fn deliver(
    io: &mut dyn Io,
    tokens: &mut TokenSource,
    destination: &Destination,
    source: &S3Uri,
    target: Target,
) -> Result<Receipt, Error> {
    let access = access(io, tokens, destination)?;
    let mut reader = S3Reader::open(io, &access, source)?;
    let info = reader.info().clone();
    let mut spec = delivery::object_spec(
        destination,
        &target.name,
        Some(info.size),
        target.content_type,
        target.metadata,
    );
    spec.session = target.session;
    spec.expected_crc32c = info
        .checksum
        .as_ref()
        .and_then(|c| c.full_object_crc32c())
        .map(str::to_owned);
    let mut receipt =
        delivery::deliver(io, tokens, destination, &spec, &mut reader).map_err(|mut e| {
            e.message = format!("{source}: {}", e.message);
            e
        })?;
    receipt.source = Some(SourceReceipt {
        uri: source.to_string(),
        etag: info.etag,
        version_id: info.version_id,
        checksum: info
            .checksum
            .as_ref()
            .map(|c| format!("{} {}", c.algorithm, c.value)),
        checksum_type: info.checksum.map(|c| c.kind),
    });
    Ok(receipt)
}
