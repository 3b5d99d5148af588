//! Where object bytes go: hashed while they stream in (CRC32C, MD5, SHA-256) and written to a
//! staging file that becomes the object's file on commit, or only hashed ([`Store::Discard`]),
//! or only CRC32C-summed ([`Store::Crc32cOnly`], for benchmarks).

use std::fs::{self, File};
use std::io::{self, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::{Digest as _, Md5};
use percent_encoding::{AsciiSet, utf8_percent_encode};
use rand::distr::{Alphanumeric, SampleString};
use sha2::Sha256;

/// Resumable uploads commit in multiples of this; non-final chunks must be multiples of it.
pub(super) const CHUNK_GRANULARITY: u64 = 256 * 1024;

/// Object names in file names: everything but letters, digits and `-_.~` is percent-encoded,
/// `/` included, so an object is always one file directly under the directory.
const FILE_NAME: &AsciiSet = super::UNRESERVED;
const STAGING_DIR: &str = ".staging";

/// The running hashes and length of a byte stream. Cloning it is a checkpoint: restoring a clone
/// forgets the bytes hashed since. The CRC32C is always computed; MD5 and SHA-256 unless the
/// store is [`Store::Crc32cOnly`].
#[derive(Clone)]
pub(super) struct Digest {
    crc32c: u32,
    md5: Option<Md5>,
    sha256: Option<Sha256>,
    len: u64,
}

impl Digest {
    pub(super) fn new() -> Self {
        Digest {
            crc32c: 0,
            md5: Some(Md5::new()),
            sha256: Some(Sha256::new()),
            len: 0,
        }
    }

    /// The CRC32C only, and the MD5 if `md5`.
    pub(super) fn crc32c_only(md5: bool) -> Self {
        Digest {
            crc32c: 0,
            md5: md5.then(Md5::new),
            sha256: None,
            len: 0,
        }
    }

    pub(super) fn update(&mut self, data: &[u8]) {
        self.crc32c = crc32c::crc32c_append(self.crc32c, data);
        if let Some(md5) = &mut self.md5 {
            md5.update(data);
        }
        if let Some(sha256) = &mut self.sha256 {
            sha256.update(data);
        }
        self.len += data.len() as u64;
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    pub(super) fn crc32c(&self) -> [u8; 4] {
        self.crc32c.to_be_bytes()
    }

    /// `None` when not computed ([`Store::Crc32cOnly`]).
    pub(super) fn md5(&self) -> Option<[u8; 16]> {
        self.md5.clone().map(|md5| md5.finalize().into())
    }

    /// The CRC32C as GCS writes it: the big-endian 4 bytes, base64.
    pub(super) fn crc32c_base64(&self) -> String {
        BASE64.encode(self.crc32c())
    }

    pub(super) fn md5_base64(&self) -> Option<String> {
        self.md5().map(|md5| BASE64.encode(md5))
    }

    /// Empty when not computed ([`Store::Crc32cOnly`]).
    pub(super) fn sha256_hex(&self) -> String {
        self.sha256
            .clone()
            .map(|sha256| hex::encode(sha256.finalize()))
            .unwrap_or_default()
    }
}

/// Where committed objects live.
pub(super) enum Store {
    Disk {
        root: PathBuf,
        staging: PathBuf,
    },
    Discard,
    /// Nothing kept, and only the CRC32C computed (the MD5 too when an upload declares one
    /// before its data): as little work per byte as a server that checks integrity can do.
    Crc32cOnly,
}

impl Store {
    pub(super) fn open(dir: Option<&Path>, crc32c_only: bool) -> io::Result<Store> {
        if crc32c_only {
            return Ok(Store::Crc32cOnly);
        }
        let Some(root) = dir else {
            return Ok(Store::Discard);
        };
        let staging = root.join(STAGING_DIR);
        fs::create_dir_all(&staging)?;
        Ok(Store::Disk {
            root: root.to_path_buf(),
            staging,
        })
    }

    /// A new, empty staging area for one upload; `md5_declared` when the upload declared an MD5
    /// before its data.
    pub(super) fn stage(&self, md5_declared: bool) -> io::Result<Staging> {
        let digest = match self {
            Store::Crc32cOnly => Digest::crc32c_only(md5_declared),
            _ => Digest::new(),
        };
        let file = match self {
            Store::Discard | Store::Crc32cOnly => None,
            Store::Disk { staging, .. } => {
                let path = staging.join(Alphanumeric.sample_string(&mut rand::rng(), 24));
                let file = File::options()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)?;
                Some((file, path))
            }
        };
        Ok(Staging { digest, file })
    }

    /// The file an object named `name` is kept in.
    pub(super) fn object_path(&self, name: &str) -> Option<PathBuf> {
        match self {
            Store::Discard | Store::Crc32cOnly => None,
            Store::Disk { root, .. } => Some(root.join(file_name(name))),
        }
    }
}

/// A leading `.` is encoded too (no hidden files, no clash with `.staging`); names whose encoding
/// exceeds a file name's 255 bytes get their SHA-256 instead (`%` never precedes a letter
/// other than A-F in an encoded name, so `%long-` cannot collide).
fn file_name(name: &str) -> String {
    let encoded = utf8_percent_encode(name, FILE_NAME).to_string();
    let encoded = match encoded.strip_prefix('.') {
        Some(rest) => format!("%2E{rest}"),
        None => encoded,
    };
    if encoded.len() <= 255 {
        encoded
    } else {
        format!("%long-{}", hex::encode(Sha256::digest(name.as_bytes())))
    }
}

/// The bytes of one upload in progress. Dropping it removes its staging file.
pub(super) struct Staging {
    digest: Digest,
    file: Option<(File, PathBuf)>,
}

impl Staging {
    pub(super) fn digest(&self) -> &Digest {
        &self.digest
    }

    pub(super) fn len(&self) -> u64 {
        self.digest.len
    }

    pub(super) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some((file, _)) = &mut self.file {
            file.write_all(data)?;
        }
        self.digest.update(data);
        Ok(())
    }

    /// Forgets everything written after `checkpoint` (a clone of an earlier [`Staging::digest`]).
    pub(super) fn rollback(&mut self, checkpoint: Digest) -> io::Result<()> {
        if let Some((file, _)) = &mut self.file {
            file.set_len(checkpoint.len)?;
            file.seek(SeekFrom::Start(checkpoint.len))?;
        }
        self.digest = checkpoint;
        Ok(())
    }

    /// Moves the staged bytes to `path` (`None` in discard mode) and returns the digest.
    pub(super) fn commit(mut self, path: Option<&Path>) -> io::Result<Digest> {
        if let (Some((file, staged)), Some(path)) = (self.file.take(), path) {
            drop(file);
            fs::rename(&staged, path)?;
        }
        Ok(self.digest.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some((file, path)) = self.file.take() {
            drop(file);
            let _ = fs::remove_file(path);
        }
    }
}

/// `crc32c` or `md5Hash` as a client wrote it: base64 of exactly `N` bytes.
pub(super) fn decode_checksum<const N: usize>(text: &str) -> Option<[u8; N]> {
    BASE64.decode(text.trim()).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_gcs_conventions() {
        let mut digest = Digest::new();
        digest.update(b"hello ");
        let checkpoint = digest.clone();
        digest.update(b"world");
        // `gsutil hash` of "hello world".
        assert_eq!(digest.crc32c_base64(), "yZRlqg==");
        assert_eq!(
            digest.md5_base64().as_deref(),
            Some("XrY7u+Ae7tCTyyK7j1rNww==")
        );
        assert_eq!(
            digest.sha256_hex(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(digest.len(), 11);
        assert_eq!(checkpoint.len(), 6);
        assert_eq!(decode_checksum::<4>("yZRlqg=="), Some(digest.crc32c()));
        assert_eq!(decode_checksum::<4>("XrY7u+Ae7tCTyyK7j1rNww=="), None);
        let mut light = Digest::crc32c_only(false);
        light.update(b"hello world");
        assert_eq!(light.crc32c_base64(), "yZRlqg==");
        assert_eq!((light.md5(), light.sha256_hex().as_str()), (None, ""));
        let mut declared = Digest::crc32c_only(true);
        declared.update(b"hello world");
        assert_eq!(declared.md5(), digest.md5());
    }

    #[test]
    fn file_names_are_flat_and_bounded() {
        assert_eq!(file_name("in/a b.txt"), "in%2Fa%20b.txt");
        assert_eq!(file_name(".staging"), "%2Estaging");
        assert_eq!(file_name("..x"), "%2E.x");
        assert_eq!(file_name("é"), "%C3%A9");
        let long = file_name(&"/".repeat(1024));
        assert!(long.starts_with("%long-") && long.len() < 255, "{long}");
    }
}
