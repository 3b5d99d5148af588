//! Objects up to the single-request limit: one `uploadType=multipart` request, retried as a
//! whole; a retry that meets 412 after a lost answer is delivered-but-unconfirmed.

use super::checksum::Checksums;
use super::json_api::{self as upload, ObjectResource};
use super::source::{ByteSource, read_exactly};
use super::{Delivery, Failure};
use crate::error::Error;

impl Delivery<'_> {
    /// Reads exactly `size` bytes and sends them in one request. `None` for the object means
    /// delivered-but-unconfirmed.
    pub(super) fn multipart(
        &mut self,
        source: &mut dyn ByteSource,
        size: u64,
    ) -> Result<(Option<ObjectResource>, Checksums), Error> {
        let data = read_exactly(source, size, &self.spec.name)?;
        let mut checksums = Checksums::default();
        checksums.update(&data);
        let (crc32c, md5) = (checksums.crc32c(), checksums.md5().unwrap_or_default());
        self.check_source_crc32c(&crc32c)?;
        let mut tries = self.tries();
        let mut maybe_landed = false;
        loop {
            let token = self.token()?;
            let (head, body) = upload::multipart(
                &self.destination.storage_url,
                &self.destination.bucket,
                self.spec,
                &data,
                &crc32c,
                &md5,
                &token,
            );
            let failure = match self.send(&head, &body) {
                Err(e) => self.transport_failure(e),
                Ok(response) if response.status() == 412 && maybe_landed => {
                    return Ok((None, checksums));
                }
                Ok(response) if response.status().is_success() => {
                    return Ok((Some(upload::object(&response, &self.spec.name)?), checksums));
                }
                Ok(response) => self.status_failure(&response),
            };
            if let Failure::Retry {
                maybe_landed: true, ..
            } = failure
            {
                maybe_landed = true;
            }
            self.recover(failure, &mut tries)?;
        }
    }
}
