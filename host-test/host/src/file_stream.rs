//! A file handed to the component as a `wasi:io` input stream, 1 MiB at a time, the next block
//! read on the blocking pool while the component works through this one.
//!
//! Wasmtime's `AsyncReadStream` over `tokio::fs::File` hands the guest 64 KiB a call, each one
//! a round trip through the blocking pool and two task wake-ups: 16 384 of them per GiB, which
//! `perf` showed costing more than the component's own work. Here it is one per MiB, and the
//! guest's `blocking-read` of a chunk gets up to a whole block at once.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::task::JoinHandle;
use wasmtime_wasi::p2::{InputStream, Pollable, StreamError, StreamResult};

/// What one read asks of the file. The guest copies each block into its chunk buffer, so its
/// memory holds at most this much beside the chunk.
pub const BLOCK: usize = 1 << 20;

pub struct FileStream {
    file: Arc<File>,
    /// Where the next block starts.
    offset: u64,
    /// What was read and not yet taken.
    buffer: Bytes,
    /// The next block, being read.
    pending: Option<JoinHandle<io::Result<Vec<u8>>>>,
    /// `Some(Ok)` at the end of the file, `Some(Err)` once a read failed.
    end: Option<io::Result<()>>,
    /// Bytes read so far, for a progress display.
    read: Option<Arc<AtomicU64>>,
}

impl FileStream {
    /// Opens `path` and starts reading its first block.
    pub fn open(path: &Path, read: Option<Arc<AtomicU64>>) -> io::Result<Self> {
        let mut stream = FileStream {
            file: Arc::new(File::open(path)?),
            offset: 0,
            buffer: Bytes::new(),
            pending: None,
            end: None,
            read,
        };
        stream.fetch();
        Ok(stream)
    }

    /// Starts reading the next block, unless one is being read or the file has ended.
    fn fetch(&mut self) {
        if self.pending.is_some() || self.end.is_some() {
            return;
        }
        let file = Arc::clone(&self.file);
        let offset = self.offset;
        self.pending = Some(tokio::task::spawn_blocking(move || {
            read_block(&file, offset)
        }));
    }
}

/// Up to [`BLOCK`] bytes from `offset`; fewer only at the end of the file.
fn read_block(file: &File, offset: u64) -> io::Result<Vec<u8>> {
    let mut block = vec![0u8; BLOCK];
    let mut filled = 0;
    while filled < BLOCK {
        match file.read_at(&mut block[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    block.truncate(filled);
    Ok(block)
}

#[async_trait::async_trait]
impl Pollable for FileStream {
    async fn ready(&mut self) {
        if !self.buffer.is_empty() || self.end.is_some() {
            return;
        }
        self.fetch();
        let Some(pending) = self.pending.take() else {
            return;
        };
        match pending.await {
            Ok(Ok(block)) if block.is_empty() => self.end = Some(Ok(())),
            Ok(Ok(block)) => {
                self.offset += block.len() as u64;
                if let Some(read) = &self.read {
                    read.fetch_add(block.len() as u64, Ordering::Relaxed);
                }
                self.buffer = Bytes::from(block);
                // The next block is read while the guest works through this one.
                self.fetch();
            }
            Ok(Err(e)) => self.end = Some(Err(e)),
            Err(e) => self.end = Some(Err(io::Error::other(e))),
        }
    }
}

#[async_trait::async_trait]
impl InputStream for FileStream {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if self.buffer.is_empty() {
            return match self.end.take() {
                Some(Ok(())) => {
                    self.end = Some(Ok(()));
                    Err(StreamError::Closed)
                }
                // Said once; after that the stream is closed.
                Some(Err(e)) => {
                    self.end = Some(Ok(()));
                    Err(StreamError::LastOperationFailed(e.into()))
                }
                None => Ok(Bytes::new()),
            };
        }
        Ok(self.buffer.split_to(size.min(self.buffer.len())))
    }
}

impl Drop for FileStream {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte, in order, in pieces no larger than asked for; then closed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_is_read_whole_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..(2 * BLOCK + 12_345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let counter = Arc::new(AtomicU64::new(0));
        let mut stream = FileStream::open(&path, Some(counter.clone())).unwrap();
        let mut got = Vec::new();
        let mut largest = 0;
        loop {
            match stream.blocking_read(700_000).await {
                Ok(bytes) => {
                    largest = largest.max(bytes.len());
                    got.extend_from_slice(&bytes);
                }
                Err(StreamError::Closed) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(got, data);
        assert_eq!(largest, 700_000);
        assert_eq!(counter.load(Ordering::Relaxed), data.len() as u64);
        assert!(matches!(stream.read(1), Err(StreamError::Closed)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_empty_file_is_closed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        let mut stream = FileStream::open(&path, None).unwrap();
        assert!(matches!(
            stream.blocking_read(10).await,
            Err(StreamError::Closed)
        ));
    }

    /// A read that fails (a directory read as a file) is an error once, then the end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_read_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut stream = FileStream::open(dir.path(), None).unwrap();
        assert!(matches!(
            stream.blocking_read(10).await,
            Err(StreamError::LastOperationFailed(_))
        ));
        assert!(matches!(stream.read(10), Err(StreamError::Closed)));
    }
}
