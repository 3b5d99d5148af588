//! A wide-area link between the sender and Google, for tests and benchmarks that must show
//! what concurrency buys at cross-cloud round trips: every connection and every Google request
//! waits one round trip, and what a connection sends the emulator arrives no faster than the
//! link's bandwidth (a token bucket per connection).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The link's shape; the default is a loopback link (no delay, no cap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wan {
    /// Paid once when a connection opens (the TCP handshake) and once per request.
    pub round_trip: Duration,
    /// Bytes per second one connection can send the emulator; `None`: no cap.
    pub bandwidth: Option<u64>,
}

impl Wan {
    pub fn is_loopback(&self) -> bool {
        *self == Wan::default()
    }

    pub(crate) async fn round_trip(&self) {
        if !self.round_trip.is_zero() {
            tokio::time::sleep(self.round_trip).await;
        }
    }
}

/// A connection whose reads (what the client sends) are paced to `bytes_per_second`.
pub(crate) struct Paced<S> {
    inner: S,
    bytes_per_second: u64,
    start: Instant,
    read: u64,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Paced<S> {
    pub(crate) fn new(inner: S, bytes_per_second: u64) -> Self {
        Paced {
            inner,
            bytes_per_second: bytes_per_second.max(1),
            start: Instant::now(),
            read: 0,
            wait: None,
        }
    }

    /// Bytes the link has carried by now and not yet handed out (a burst of at most 64 KiB).
    fn allowance(&self) -> u64 {
        let earned = self.start.elapsed().as_secs_f64() * self.bytes_per_second as f64;
        (earned as u64).saturating_sub(self.read).min(64 << 10)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Paced<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if let Some(wait) = self.wait.as_mut() {
                if wait.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.wait = None;
            }
            let allowance = self.allowance();
            if allowance == 0 {
                // The time the link takes to carry 16 KiB more.
                let pause =
                    Duration::from_secs_f64((16 << 10) as f64 / self.bytes_per_second as f64);
                self.wait = Some(Box::pin(tokio::time::sleep(pause)));
                continue;
            }
            let take = (allowance as usize).min(buf.remaining());
            let mut limited = ReadBuf::new(buf.initialize_unfilled_to(take));
            let poll = Pin::new(&mut self.inner).poll_read(cx, &mut limited);
            let n = limited.filled().len();
            buf.advance(n);
            self.read += n as u64;
            return poll;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Paced<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn a_paced_connection_carries_no_more_than_its_bandwidth() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let sent = vec![7u8; 512 << 10];
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
        });
        let mut paced = Paced::new(server, 2 << 20);
        let start = Instant::now();
        let mut got = vec![0u8; 512 << 10];
        paced.read_exact(&mut got).await.unwrap();
        let took = start.elapsed();
        writer.await.unwrap();
        // 512 KiB at 2 MiB/s: 250 ms, less the first burst.
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_millis(1000), "{took:?}");
        assert!(got.iter().all(|&b| b == 7));
    }
}
