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

/// A connection whose reads (what the client sends) are paced to `bytes_per_second`: a token
/// bucket that fills at that rate and holds at most [`BURST`] bytes, so an idle connection (or
/// one waiting out a round trip) banks no more than that.
pub(crate) struct Paced<S> {
    inner: S,
    bytes_per_second: f64,
    tokens: f64,
    last: Instant,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The most a connection can send at once after a pause.
const BURST: f64 = (64 << 10) as f64;

impl<S> Paced<S> {
    pub(crate) fn new(inner: S, bytes_per_second: u64) -> Self {
        Paced {
            inner,
            bytes_per_second: bytes_per_second.max(1) as f64,
            tokens: 0.0,
            last: Instant::now(),
            wait: None,
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() * self.bytes_per_second;
        self.tokens = (self.tokens + earned).min(BURST);
        self.last = now;
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
            self.refill();
            if self.tokens < 1.0 {
                // The time the link takes to carry 16 KiB more.
                let pause = Duration::from_secs_f64((16 << 10) as f64 / self.bytes_per_second);
                self.wait = Some(Box::pin(tokio::time::sleep(pause)));
                continue;
            }
            let take = (self.tokens as usize).min(buf.remaining());
            let mut limited = ReadBuf::new(buf.initialize_unfilled_to(take));
            let poll = Pin::new(&mut self.inner).poll_read(cx, &mut limited);
            let n = limited.filled().len();
            buf.advance(n);
            self.tokens -= n as f64;
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
        // 512 KiB at 2 MiB/s: 250 ms (the bucket starts empty).
        assert!(took >= Duration::from_millis(240), "{took:?}");
        assert!(took < Duration::from_millis(1000), "{took:?}");
        assert!(got.iter().all(|&b| b == 7));
    }

    #[tokio::test]
    async fn a_pause_banks_no_more_than_the_burst() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut paced = Paced::new(server, 1 << 20);
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.write_all(&vec![1u8; 320 << 10]).await.unwrap();
        let start = Instant::now();
        let mut got = vec![0u8; 320 << 10];
        paced.read_exact(&mut got).await.unwrap();
        // 300 ms idle would bank 300 KiB; the bucket keeps 64 KiB: 256 KiB more at 1 MiB/s.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(230), "{took:?}");
    }
}
