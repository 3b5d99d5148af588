//! Where the bytes come from (a file the host opened, a request body), and the checks that a
//! source holds exactly what it declared.

use crate::error::{Error, Step};

/// Where the bytes come from: a file the host opened, a request body.
pub trait ByteSource {
    /// Fills `buf` as far as the source goes; fewer bytes than `buf.len()` only at its end.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, String>;
}

impl ByteSource for &[u8] {
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        let n = buf.len().min(self.len());
        buf[..n].copy_from_slice(&self[..n]);
        *self = &self[n..];
        Ok(n)
    }
}

pub(super) fn read_exactly(
    source: &mut dyn ByteSource,
    size: u64,
    name: &str,
) -> Result<Vec<u8>, Error> {
    let mut data = vec![0u8; usize::try_from(size).expect("small objects fit memory")];
    let n = source
        .fill(&mut data)
        .map_err(|e| Error::new(Step::Read, format!("{name}: {e}")))?;
    if (n as u64) < size {
        return Err(Error::new(
            Step::Read,
            format!("{name} ended at {n} bytes but had {size} when delivery began"),
        )
        .with_fix(
            "deliver files that are complete and no longer written to; nothing was created",
        ));
    }
    ensure_ended(source, name)?;
    Ok(data)
}

pub(super) fn ended_early(name: &str, at: u64, size: u64) -> Error {
    Error::new(
        Step::Read,
        format!("{name} ended at {at} bytes but had {size} when delivery began"),
    )
    .with_fix("deliver files that are complete and no longer written to; nothing was created")
}

/// A file that grew while being read would be delivered cut short: refuse instead.
pub(super) fn ensure_ended(source: &mut dyn ByteSource, name: &str) -> Result<(), Error> {
    let mut probe = [0u8; 1];
    match source.fill(&mut probe) {
        Ok(0) => Ok(()),
        Ok(_) => Err(Error::new(
            Step::Read,
            format!("{name} grew while it was being delivered"),
        )
        .with_fix("deliver files that are complete and no longer written to; nothing was created")),
        Err(e) => Err(Error::new(Step::Read, format!("{name}: {e}"))),
    }
}
