//! The checksums GCS validates: CRC32C (Castagnoli) and MD5, both base64 as GCS writes them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};

/// Running CRC32C and MD5 over everything fed so far.
#[derive(Clone, Default)]
pub struct Checksums {
    crc32c: u32,
    md5: Md5,
    len: u64,
}

impl Checksums {
    pub fn update(&mut self, bytes: &[u8]) {
        self.crc32c = crc32c::crc32c_append(self.crc32c, bytes);
        self.md5.update(bytes);
        self.len += bytes.len() as u64;
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The big-endian CRC32C, base64: GCS's `crc32c` field.
    pub fn crc32c(&self) -> String {
        STANDARD.encode(self.crc32c.to_be_bytes())
    }

    /// GCS's `md5Hash` field.
    pub fn md5(&self) -> String {
        STANDARD.encode(self.md5.clone().finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_gcs_published_values() {
        // GCS documents the empty object as crc32c "AAAAAA==" and md5 "1B2M2Y8AsgTpgAmY7PhCfg==".
        let empty = Checksums::default();
        assert_eq!(empty.crc32c(), "AAAAAA==");
        assert_eq!(empty.md5(), "1B2M2Y8AsgTpgAmY7PhCfg==");
        // RFC 3720's CRC32C check value: "123456789" -> 0xE3069283.
        let mut c = Checksums::default();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.crc32c(), STANDARD.encode(0xE306_9283u32.to_be_bytes()));
        assert_eq!(c.len(), 9);
    }
}
