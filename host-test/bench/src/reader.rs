//! A file read on a thread of its own, in 1 MiB blocks up to four ahead, handed out as an
//! [`AsyncRead`]. `tokio::fs::File` sends every read to the blocking pool, and Wasmtime's input
//! stream reads 64 KiB at a time: a thread hop per 64 KiB, which the bench measures costing a
//! large share of the throughput. Here a hop costs a memcpy of what is already read.

use std::io::{self, Read as _};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

const BLOCK: usize = 1 << 20;
const AHEAD: usize = 4;

pub struct FileReader {
    blocks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl FileReader {
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut file = std::fs::File::open(path)?;
        let (sender, blocks) = mpsc::channel(AHEAD);
        std::thread::Builder::new()
            .name("file-reader".into())
            .spawn(move || {
                loop {
                    let mut block = vec![0u8; BLOCK];
                    let mut filled = 0;
                    let read = loop {
                        match file.read(&mut block[filled..]) {
                            Ok(0) => break Ok(()),
                            Ok(n) => {
                                filled += n;
                                if filled == BLOCK {
                                    break Ok(());
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => break Err(e),
                        }
                    };
                    block.truncate(filled);
                    let message = match read {
                        Ok(()) if filled == 0 => break,
                        Ok(()) => Ok(Bytes::from(block)),
                        Err(e) => Err(e),
                    };
                    let failed = message.is_err();
                    // The reader was dropped: stop reading.
                    if sender.blocking_send(message).is_err() || failed {
                        break;
                    }
                }
            })?;
        Ok(FileReader {
            blocks,
            current: Bytes::new(),
        })
    }
}

impl AsyncRead for FileReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.current.is_empty() {
            match self.blocks.poll_recv(cx) {
                Poll::Ready(Some(Ok(block))) => self.current = block,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                // The end of the file.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = buf.remaining().min(self.current.len());
        buf.put_slice(&self.current[..n]);
        self.current.advance(n);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt as _;

    use super::*;

    #[tokio::test]
    async fn reads_every_byte_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for size in [0, 1, BLOCK - 1, BLOCK, 3 * BLOCK + 17] {
            let path = dir.path().join(format!("f{size}"));
            let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            let mut read = Vec::new();
            FileReader::open(&path)
                .unwrap()
                .read_to_end(&mut read)
                .await
                .unwrap();
            assert!(read == data, "{size} bytes");
        }
    }
}
