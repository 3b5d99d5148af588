//! Objects: what an upload's metadata may say, the checks GCS makes on names and checksums, and
//! the object resource it answers with.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use percent_encoding::utf8_percent_encode;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use super::UNRESERVED;
use super::errors::bad_request;
use super::store::{Digest, decode_checksum};
use crate::reply::Reply;

/// An object in the emulated bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub name: String,
    pub generation: i64,
    pub size: u64,
    /// Base64 of the big-endian CRC32C, as GCS writes it.
    pub crc32c: String,
    /// Base64 of the MD5 (empty if [`Storage::Benchmark`](crate::Storage) did not compute it).
    pub md5_hash: String,
    /// Empty with [`Storage::Benchmark`](crate::Storage).
    pub sha256_hex: String,
    pub content_type: String,
    pub metadata: BTreeMap<String, String>,
    /// The file holding the bytes; `None` with [`Storage::Discard`](crate::Storage).
    pub path: Option<PathBuf>,
}

/// A stored object and the resource GCS answered with when it was created.
pub(super) struct Object {
    pub stored: StoredObject,
    pub resource: Value,
}

impl Object {
    pub(super) fn new(
        bucket: &str,
        spec: &ObjectSpec,
        generation: i64,
        digest: &Digest,
        created: OffsetDateTime,
        path: Option<PathBuf>,
    ) -> Self {
        let stored = StoredObject {
            name: spec.name.clone(),
            generation,
            size: digest.len(),
            crc32c: digest.crc32c_base64(),
            md5_hash: digest.md5_base64().unwrap_or_default(),
            sha256_hex: digest.sha256_hex(),
            content_type: spec.content_type.clone(),
            metadata: spec.metadata.clone(),
            path,
        };
        let encoded = utf8_percent_encode(&spec.name, UNRESERVED).to_string();
        let time = rfc3339_millis(created);
        let mut resource = json!({
            "kind": "storage#object",
            "id": format!("{bucket}/{}/{generation}", spec.name),
            "selfLink": format!("https://www.googleapis.com/storage/v1/b/{bucket}/o/{encoded}"),
            "mediaLink": format!(
                "https://storage.googleapis.com/download/storage/v1/b/{bucket}/o/{encoded}?generation={generation}&alt=media"
            ),
            "name": spec.name,
            "bucket": bucket,
            "generation": generation.to_string(),
            "metageneration": "1",
            "contentType": spec.content_type,
            "storageClass": "STANDARD",
            "size": stored.size.to_string(),
            "crc32c": stored.crc32c,
            "etag": etag(generation, 1),
            "timeCreated": time,
            "updated": time,
            "timeStorageClassUpdated": time,
            "timeFinalized": time,
        });
        if !stored.md5_hash.is_empty() {
            resource["md5Hash"] = json!(stored.md5_hash);
        }
        if !spec.metadata.is_empty() {
            resource["metadata"] = json!(spec.metadata);
        }
        Object { stored, resource }
    }
}

/// GCS's object etag: base64 of the protobuf `{1: generation, 2: metageneration}`.
fn etag(generation: i64, metageneration: u64) -> String {
    let mut bytes = vec![0x08];
    varint(&mut bytes, generation as u64);
    bytes.push(0x10);
    varint(&mut bytes, metageneration);
    BASE64.encode(bytes)
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// `2025-06-01T12:00:00.000Z`, as GCS writes times.
fn rfc3339_millis(time: OffsetDateTime) -> String {
    let utc = time.to_offset(time::UtcOffset::UTC);
    utc.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_default()
}

/// What the client said about the object to create, from the metadata JSON and the query.
#[derive(Clone, Debug, Default)]
pub(super) struct UploadMetadata {
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub crc32c: Option<String>,
    pub md5_hash: Option<String>,
}

impl UploadMetadata {
    /// Parses the JSON object resource a client sends; unknown fields are ignored, as GCS does.
    pub(super) fn parse(body: &[u8]) -> Result<Self, Reply> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(UploadMetadata::default());
        }
        let object = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => object,
            _ => return Err(parse_error()),
        };
        let string = |object: &Map<String, Value>, field: &str| match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid_field(field)),
        };
        let mut metadata = BTreeMap::new();
        match object.get("metadata") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    match value {
                        Value::String(s) => {
                            metadata.insert(key.clone(), s.clone());
                        }
                        Value::Null => {}
                        _ => return Err(invalid_field("metadata")),
                    }
                }
            }
            Some(_) => return Err(invalid_field("metadata")),
        }
        let upload = UploadMetadata {
            name: string(&object, "name")?,
            content_type: string(&object, "contentType")?,
            metadata,
            crc32c: string(&object, "crc32c")?,
            md5_hash: string(&object, "md5Hash")?,
        };
        if let Some(crc32c) = &upload.crc32c
            && decode_checksum::<4>(crc32c).is_none()
        {
            return Err(bad_request(
                "invalid",
                format!("Provided CRC32C \"{crc32c}\" is not a valid base64-encoded CRC32C."),
            ));
        }
        if let Some(md5) = &upload.md5_hash
            && decode_checksum::<16>(md5).is_none()
        {
            return Err(bad_request(
                "invalid",
                format!("Provided MD5 hash \"{md5}\" is not a valid base64-encoded MD5 hash."),
            ));
        }
        Ok(upload)
    }

    /// The object's name: the `name` query parameter, else the metadata's.
    pub(super) fn spec(
        self,
        query_name: Option<&str>,
        fallback_content_type: Option<&str>,
    ) -> Result<ObjectSpec, Reply> {
        let Some(name) = query_name.map(str::to_owned).or(self.name) else {
            return Err(bad_request("required", "Required"));
        };
        validate_name(&name)?;
        Ok(ObjectSpec {
            name,
            content_type: self
                .content_type
                .or_else(|| fallback_content_type.map(str::to_owned))
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "application/octet-stream".into()),
            metadata: self.metadata,
            expected: Expected {
                crc32c: self.crc32c,
                md5: self.md5_hash,
            },
        })
    }
}

/// An object about to be created.
#[derive(Clone, Debug)]
pub(super) struct ObjectSpec {
    pub name: String,
    pub content_type: String,
    pub metadata: BTreeMap<String, String>,
    /// Checksums from the metadata, checked against the data before the object is created.
    pub expected: Expected,
}

/// Checksums a client declared (base64, as it wrote them).
#[derive(Clone, Debug, Default)]
pub(super) struct Expected {
    pub crc32c: Option<String>,
    pub md5: Option<String>,
}

impl Expected {
    /// `X-Goog-Hash: crc32c=...,md5=...`.
    pub(super) fn from_goog_hash(header: &str) -> Result<Self, Reply> {
        let mut expected = Expected::default();
        for item in header.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = || {
                bad_request(
                    "invalid",
                    format!("Invalid X-Goog-Hash header value \"{header}\"."),
                )
            };
            let (algorithm, value) = item.split_once('=').ok_or_else(bad)?;
            match algorithm.trim().to_ascii_lowercase().as_str() {
                "crc32c" if decode_checksum::<4>(value).is_some() => {
                    expected.crc32c = Some(value.trim().to_owned())
                }
                "md5" if decode_checksum::<16>(value).is_some() => {
                    expected.md5 = Some(value.trim().to_owned())
                }
                _ => return Err(bad()),
            }
        }
        Ok(expected)
    }

    /// GCS's answer when the data does not match what the client declared.
    pub(super) fn verify(&self, digest: &Digest) -> Result<(), Reply> {
        if let Some(provided) = &self.crc32c
            && decode_checksum::<4>(provided) != Some(digest.crc32c())
        {
            return Err(bad_request(
                "invalid",
                format!(
                    "Provided CRC32C \"{provided}\" doesn't match calculated CRC32C \"{}\".",
                    digest.crc32c_base64()
                ),
            ));
        }
        if let Some(provided) = &self.md5 {
            let Some(md5) = digest.md5() else {
                return Err(bad_request(
                    "invalid",
                    "This emulator's benchmark store computes an MD5 only for uploads that \
                     declare one before their data (in the metadata, or a media upload's \
                     X-Goog-Hash); declare it there, or send the crc32c alone.",
                ));
            };
            if decode_checksum::<16>(provided) != Some(md5) {
                return Err(bad_request(
                    "invalid",
                    format!(
                        "Provided MD5 hash \"{provided}\" doesn't match calculated MD5 hash \"{}\".",
                        BASE64.encode(md5)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// GCS's object-name rules.
fn validate_name(name: &str) -> Result<(), Reply> {
    let valid = !name.is_empty()
        && name.len() <= 1024
        && !name.contains(['\r', '\n'])
        && name != "."
        && name != ".."
        && !name.starts_with(".well-known/acme-challenge/");
    if valid {
        Ok(())
    } else {
        Err(bad_request(
            "invalid",
            "The specified object name is not valid.",
        ))
    }
}

fn parse_error() -> Reply {
    bad_request("parseError", "Parse Error")
}

fn invalid_field(field: &str) -> Reply {
    bad_request("invalid", format!("Invalid value for field '{field}'."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_gcs_protobufs() {
        // An etag as GCS writes it, for generation 1418688703353000 and metageneration 1.
        assert_eq!(etag(1_418_688_703_353_000, 1), "CKih16GjycICEAE=");
    }

    #[test]
    fn metadata_parsing() {
        let m = UploadMetadata::parse(
            br#"{"name":"a","contentType":"text/plain","metadata":{"k":"v","n":null},
                 "crc32c":"yZRlqg==","md5Hash":"XrY7u+Ae7tCTyyK7j1rNww==","cacheControl":"x"}"#,
        )
        .unwrap();
        assert_eq!(m.name.as_deref(), Some("a"));
        assert_eq!(m.metadata.len(), 1);
        let spec = m.spec(None, None).unwrap();
        assert_eq!(spec.content_type, "text/plain");
        for bad in [
            &b"["[..],
            br#"{"name": 1}"#,
            br#"{"metadata": {"k": 1}}"#,
            br#"{"crc32c": "AAAA"}"#,
            br#"{"md5Hash": "yZRlqg=="}"#,
        ] {
            assert!(UploadMetadata::parse(bad).is_err());
        }
        let unnamed = UploadMetadata::parse(b"").unwrap().spec(None, Some("x/y"));
        assert_eq!(unnamed.unwrap_err().body["error"]["message"], "Required");
        let spec = UploadMetadata::default()
            .spec(Some("q"), Some("x/y"))
            .unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.content_type.as_str()),
            ("q", "x/y")
        );
        for bad in ["", ".", "..", "a\nb", ".well-known/acme-challenge/x"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn goog_hash() {
        let e = Expected::from_goog_hash("crc32c=yZRlqg==, md5=XrY7u+Ae7tCTyyK7j1rNww==").unwrap();
        assert_eq!(e.crc32c.as_deref(), Some("yZRlqg=="));
        assert_eq!(e.md5.as_deref(), Some("XrY7u+Ae7tCTyyK7j1rNww=="));
        assert!(Expected::from_goog_hash("sha1=abc").is_err());
        assert!(Expected::from_goog_hash("crc32c").is_err());
        assert!(Expected::from_goog_hash("crc32c=####").is_err());
    }

    #[test]
    fn a_crc32c_only_digest_refuses_an_undeclared_md5_rather_than_skip_it() {
        let mut digest = Digest::crc32c_only(false);
        digest.update(b"hello world");
        let crc32c_only = Expected::from_goog_hash("crc32c=yZRlqg==").unwrap();
        assert!(crc32c_only.verify(&digest).is_ok());
        let both =
            Expected::from_goog_hash("crc32c=yZRlqg==,md5=XrY7u+Ae7tCTyyK7j1rNww==").unwrap();
        let refused = both.verify(&digest).unwrap_err();
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("declare"),
            "{:?}",
            refused.body
        );
        let mut declared = Digest::crc32c_only(true);
        declared.update(b"hello world");
        assert!(both.verify(&declared).is_ok());
        let wrong = Expected::from_goog_hash("md5=AAAAAAAAAAAAAAAAAAAAAA==").unwrap();
        assert!(wrong.verify(&declared).is_err());
    }

    #[test]
    fn times_have_milliseconds() {
        let t = time::macros::datetime!(2025-06-01 12:00:00.123456 UTC);
        assert_eq!(rfc3339_millis(t), "2025-06-01T12:00:00.123Z");
    }
}
