//! What a delivery reports: one JSON line per object.

use serde::Serialize;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// GCS answered with the object it created.
    Delivered,
    /// An attempt's answer was lost and the retry found the name taken: the lost attempt most
    /// likely created it, after GCS checked its checksum.
    DeliveredUnconfirmed,
}

/// One JSON line per delivered file.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Receipt {
    pub status: Status,
    pub bucket: String,
    pub name: String,
    pub generation: Option<String>,
    pub size: u64,
    pub crc32c: String,
    /// Computed from the bytes read for a single-request upload; for a resumable one, the MD5
    /// GCS computed (empty if it reports none), as its integrity rests on the CRC32C.
    #[serde(rename = "md5Hash")]
    pub md5_hash: String,
    pub upload: &'static str,
    pub requests: u32,
    pub retries: u32,
    pub elapsed_ms: u64,
    /// Where the bytes came from, for sources the receipt should name (S3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceReceipt>,
}

/// The S3 object a delivery read.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SourceReceipt {
    pub uri: String,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    /// S3's checksum, `ALGORITHM VALUE` (e.g. `CRC32C yZRlqg==`).
    pub checksum: Option<String>,
    /// `FULL_OBJECT` or `COMPOSITE`.
    pub checksum_type: Option<String>,
}
