//! S3 as a source: an object (`s3://BUCKET/KEY`) or every object under a prefix
//! (`s3://BUCKET/PREFIX/`), streamed from S3 into the partner's bucket without a local copy.
//!
//! - `uri`: the `s3://` URIs, checked as S3 names buckets and keys;
//! - `request`: the signed requests (GetObject with the full-object checksum asked for,
//!   ranged re-reads pinned to one version, ListObjectsV2), virtual-hosted or path-style as the
//!   AWS SDKs address them, signed as S3 wants (no double encoding, no path normalisation,
//!   `x-amz-content-sha256`);
//! - `answer`: what S3 answered (size, ETag, version, checksum and its type, list pages) and
//!   its refusals as diagnoses (`NoSuchBucket`, `NoSuchKey`, `AccessDenied`, wrong region);
//! - `reader`: the object as a [`crate::delivery::ByteSource`] that resumes a broken read
//!   where it stopped, on the same version;
//! - `copy`: S3 → Cloud Storage, with the end-to-end checksum check.

pub mod answer;
pub mod copy;
pub mod reader;
pub mod request;
pub mod uri;

pub use answer::{ObjectInfo, SourceChecksum};
pub use reader::S3Reader;
pub use request::S3Endpoint;
pub use uri::S3Uri;
