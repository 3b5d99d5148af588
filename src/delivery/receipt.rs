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
}
