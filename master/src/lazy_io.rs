//! Read and write buffers that exist only while a connection has bytes in them.
//!
//! The master holds a Cap'n Proto connection per agent, and at 10,000 agents `futures`'
//! `BufReader`/`BufWriter` (allocated up front, kept for the connection's life) held 80 MB for
//! connections that are idle nearly all the time. These allocate their buffer when a read or a
//! write needs one and free it once it is drained, so an idle connection holds none; a busy one
//! gets the same batching of small reads and writes into few system calls.

use futures::io::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// Reads through a buffer of `capacity` bytes, present only while it holds unread bytes.
pub struct LazyBufReader<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    capacity: usize,
}

impl<R> LazyBufReader<R> {
    pub fn with_capacity(capacity: usize, inner: R) -> Self {
        LazyBufReader {
            inner,
            buf: Vec::new(),
            pos: 0,
            capacity: capacity.max(1),
        }
    }

    /// Bytes of heap the buffer holds now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// Copies what the buffer holds into `out`; frees the buffer once it is drained.
    fn take_buffered(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf = Vec::new();
            self.pos = 0;
        }
        n
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for LazyBufReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pos < this.buf.len() {
            return Poll::Ready(Ok(this.take_buffered(out)));
        }
        // A large read gains nothing from a buffer.
        if out.len() >= this.capacity {
            return Pin::new(&mut this.inner).poll_read(cx, out);
        }
        let mut buf = vec![0u8; this.capacity];
        let n = ready!(Pin::new(&mut this.inner).poll_read(cx, &mut buf))?;
        buf.truncate(n);
        this.buf = buf;
        this.pos = 0;
        Poll::Ready(Ok(this.take_buffered(out)))
    }
}

/// Writes through a buffer of `capacity` bytes, present only until it is flushed.
pub struct LazyBufWriter<W> {
    inner: W,
    buf: Vec<u8>,
    written: usize,
    capacity: usize,
}

impl<W> LazyBufWriter<W> {
    pub fn with_capacity(capacity: usize, inner: W) -> Self {
        LazyBufWriter {
            inner,
            buf: Vec::new(),
            written: 0,
            capacity: capacity.max(1),
        }
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.buf.capacity()
    }
}

impl<W: AsyncWrite + Unpin> LazyBufWriter<W> {
    /// Writes out what the buffer holds, then frees it.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the connection took none of the buffered bytes",
                )));
            }
            self.written += n;
        }
        self.buf = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for LazyBufWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() + data.len() > this.capacity {
            ready!(this.poll_drain(cx))?;
        }
        if data.len() >= this.capacity {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        if this.buf.capacity() == 0 {
            this.buf.reserve_exact(this.capacity);
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::io::{AsyncReadExt, AsyncWriteExt, Cursor};

    /// A reader that hands out at most `step` bytes a call, as a socket may.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
        reads: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let n = out.len().min(self.step).min(self.data.len() - self.pos);
            let pos = self.pos;
            out[..n].copy_from_slice(&self.data[pos..pos + n]);
            self.pos += n;
            self.reads += 1;
            Poll::Ready(Ok(n))
        }
    }

    #[test]
    fn reads_everything_in_order_and_frees_the_buffer_when_drained() {
        futures::executor::block_on(async {
            let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
            let inner = Trickle {
                data: data.clone(),
                pos: 0,
                step: 700,
                reads: 0,
            };
            let mut r = LazyBufReader::with_capacity(1024, inner);
            let mut got = Vec::new();
            // Small reads (as a message's header is) come from the buffer.
            let mut head = [0u8; 8];
            r.read_exact(&mut head).await.unwrap();
            got.extend_from_slice(&head);
            assert!(r.held() > 0);
            // A large one bypasses it once the buffer is drained.
            let mut rest = vec![0u8; data.len() - 8];
            r.read_exact(&mut rest).await.unwrap();
            got.extend_from_slice(&rest);
            assert_eq!(got, data);
            assert_eq!(r.held(), 0, "a drained buffer is freed");
            let mut more = [0u8; 4];
            assert_eq!(r.read(&mut more).await.unwrap(), 0);
        });
    }

    #[test]
    fn small_reads_share_one_read_of_the_connection() {
        futures::executor::block_on(async {
            let inner = Trickle {
                data: vec![7; 64],
                pos: 0,
                step: 64,
                reads: 0,
            };
            let mut r = LazyBufReader::with_capacity(1024, inner);
            for _ in 0..8 {
                let mut b = [0u8; 8];
                r.read_exact(&mut b).await.unwrap();
                assert_eq!(b, [7; 8]);
            }
            assert_eq!(r.inner.reads, 1);
            assert_eq!(r.held(), 0);
        });
    }

    #[test]
    fn writes_are_buffered_until_flushed_then_the_buffer_is_freed() {
        futures::executor::block_on(async {
            let mut w = LazyBufWriter::with_capacity(16, Cursor::new(Vec::new()));
            assert_eq!(w.held(), 0);
            w.write_all(b"abc").await.unwrap();
            w.write_all(b"defgh").await.unwrap();
            assert!(w.held() >= 16);
            assert!(
                w.inner.get_ref().is_empty(),
                "small writes wait in the buffer"
            );
            // Past the capacity: the buffer goes out first, then the large write directly.
            w.write_all(b"0123456789abcdefXYZ").await.unwrap();
            assert_eq!(w.inner.get_ref().as_slice(), b"abcdefgh0123456789abcdefXYZ");
            w.write_all(b"!").await.unwrap();
            w.flush().await.unwrap();
            assert_eq!(
                w.inner.get_ref().as_slice(),
                b"abcdefgh0123456789abcdefXYZ!"
            );
            assert_eq!(w.held(), 0, "a flushed buffer is freed");
        });
    }
}
