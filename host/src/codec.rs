//! One request per stream: each side writes its frame and closes. A frame
//! is read whole, up to a limit per protocol and direction, before anything
//! decodes it.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use hush_protocol::{BatchOrder, MAX_ACK_BATCH_LEN, MAX_BATCH_LEN};
use libp2p::{StreamProtocol, request_response};

use crate::DIRECT_PROTOCOL_ORDERED;

/// Reads one whole, non-empty frame of at most `max_request` /
/// `max_response` bytes.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_request: usize,
    max_response: usize,
}

impl FrameCodec {
    pub const fn new(max_request: usize, max_response: usize) -> Self {
        Self {
            max_request,
            max_response,
        }
    }
}

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(max as u64 + 1).read_to_end(&mut buf).await?;
    if buf.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame over the limit of {max} bytes"),
        ));
    }
    if buf.is_empty() {
        // Every hush frame starts with a version byte: an empty one means
        // the peer closed the stream without answering.
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the peer closed the stream without a frame",
        ));
    }
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, frame: &[u8]) -> io::Result<()> {
    io.write_all(frame).await?;
    io.close().await
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_request).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_response).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        r: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &r).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        r: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &r).await
    }
}

/// A request of `/hush/direct/2` or `/1`: an encoded `EnvelopeBatch`, and
/// on `/2` its [`BatchOrder`] before it. Outbound requests always carry
/// one; inbound, `None` means the peer spoke `/1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectRequest {
    pub order: Option<BatchOrder>,
    pub batch: Vec<u8>,
}

/// The answer (an encoded `AckBatch`), and whether it came on `/2`: the
/// recipient handles our batches in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectResponse {
    pub ordered: bool,
    pub acks: Vec<u8>,
}

/// The 1:1 protocols, `/hush/direct/2` first, `/1` as the fallback: the
/// same frames, `/2` with the order header. A request that must follow
/// another still unanswered (`after` ≠ 0) is never sent on `/1`: its
/// write fails with [`io::ErrorKind::Unsupported`], and the sender goes
/// back to one request at a time.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirectCodec;

impl DirectCodec {
    fn frames(protocol: &StreamProtocol) -> (bool, FrameCodec) {
        let ordered = *protocol == DIRECT_PROTOCOL_ORDERED;
        let header = if ordered { BatchOrder::LEN } else { 0 };
        (
            ordered,
            FrameCodec::new(MAX_BATCH_LEN + header, MAX_ACK_BATCH_LEN),
        )
    }
}

impl request_response::Codec for DirectCodec {
    type Protocol = StreamProtocol;
    type Request = DirectRequest;
    type Response = DirectResponse;

    async fn read_request<T>(&mut self, p: &StreamProtocol, io: &mut T) -> io::Result<DirectRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let (ordered, frames) = Self::frames(p);
        let frame = read_frame(io, frames.max_request).await?;
        if !ordered {
            return Ok(DirectRequest {
                order: None,
                batch: frame,
            });
        }
        let Some((order, batch)) = BatchOrder::split(&frame) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an ordered batch shorter than its header",
            ));
        };
        Ok(DirectRequest {
            order: Some(order),
            batch: batch.to_vec(),
        })
    }

    async fn read_response<T>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<DirectResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let (ordered, frames) = Self::frames(p);
        let acks = read_frame(io, frames.max_response).await?;
        Ok(DirectResponse { ordered, acks })
    }

    async fn write_request<T>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
        r: DirectRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let (ordered, _) = Self::frames(p);
        let order = r.order.unwrap_or(BatchOrder { seq: 0, after: 0 });
        if !ordered {
            if order.after != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the peer handles one batch at a time (/hush/direct/1)",
                ));
            }
            return write_frame(io, &r.batch).await;
        }
        let mut frame = Vec::with_capacity(BatchOrder::LEN + r.batch.len());
        frame.extend_from_slice(&order.to_bytes());
        frame.extend_from_slice(&r.batch);
        write_frame(io, &frame).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        r: DirectResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &r.acks).await
    }
}

#[cfg(test)]
mod tests {
    use request_response::Codec;

    use super::*;
    use crate::DIRECT_PROTOCOL;

    fn request(after: u64) -> DirectRequest {
        DirectRequest {
            order: Some(BatchOrder { seq: 7, after }),
            batch: vec![1, 2, 3],
        }
    }

    #[test]
    fn an_ordered_batch_carries_its_order_on_2_and_only_the_batch_on_1() {
        futures::executor::block_on(async {
            let mut codec = DirectCodec;
            let mut wire = Vec::new();
            let mut io = futures::io::Cursor::new(&mut wire);
            codec
                .write_request(&DIRECT_PROTOCOL_ORDERED, &mut io, request(6))
                .await
                .unwrap();
            let read = codec
                .read_request(&DIRECT_PROTOCOL_ORDERED, &mut &wire[..])
                .await
                .unwrap();
            assert_eq!(read, request(6));

            let mut wire = Vec::new();
            let mut io = futures::io::Cursor::new(&mut wire);
            codec
                .write_request(&DIRECT_PROTOCOL, &mut io, request(0))
                .await
                .unwrap();
            assert_eq!(wire, [1, 2, 3]);
            let read = codec
                .read_request(&DIRECT_PROTOCOL, &mut &wire[..])
                .await
                .unwrap();
            assert_eq!(read.order, None);
        });
    }

    #[test]
    fn a_batch_that_must_follow_another_is_never_sent_on_1() {
        futures::executor::block_on(async {
            let mut wire = Vec::new();
            let mut io = futures::io::Cursor::new(&mut wire);
            let e = DirectCodec
                .write_request(&DIRECT_PROTOCOL, &mut io, request(6))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::Unsupported);
            assert!(wire.is_empty());
        });
    }

    #[test]
    fn an_ordered_frame_shorter_than_its_header_is_refused() {
        futures::executor::block_on(async {
            let short = [0u8; BatchOrder::LEN - 1];
            assert!(
                DirectCodec
                    .read_request(&DIRECT_PROTOCOL_ORDERED, &mut &short[..])
                    .await
                    .is_err()
            );
        });
    }
}
