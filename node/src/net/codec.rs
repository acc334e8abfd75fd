//! The `/renkei/relay/1` stream codec.
//!
//! # Framing
//!
//! One request and one response per stream, each a single frame:
//!
//! ```text
//! frame = length: u32 big-endian ‖ body: `length` bytes
//! body  = the canonical CBOR of `wire::Request` / `wire::Response`
//! ```
//!
//! The body is decoded with the protocol crate's own decoders (never re-encoded, never
//! through libp2p's CBOR codec). A frame longer than the node's limit
//! ([`MESSAGE_BYTES_MAX`] unless configured lower) is refused:
//!
//! - an inbound *request* over the limit is drained (bounded by the request timeout, so
//!   the sender is not left blocked on flow control) and answered with
//!   `Refused { code: TooLarge, .. }`; an undecodable one with `TooLarge` or `Malformed`
//!   (the decoder's message). These refusals are made by the event loop without reaching
//!   the core.
//! - an inbound *response* over the limit or undecodable fails the request with an I/O
//!   error naming the limit, which surfaces as `NetEvent::SendFailed`.
//! - an outbound frame over the limit is never written: the writer fails with an error
//!   naming the limit (the event loop also checks before sending).

use std::io;
use std::sync::Arc;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use renkei_protocol::error::DecodeError;
use renkei_protocol::wire::{RELAY_PROTOCOL, RefusalCode, Request, Response};
use tokio::sync::Semaphore;

/// The relay protocol name as a libp2p stream protocol.
pub(crate) const RELAY: StreamProtocol = StreamProtocol::new(RELAY_PROTOCOL);

/// A request as carried by the codec.
#[derive(Debug)]
pub(crate) enum RequestFrame {
    /// Outbound: the canonical bytes to write (size already checked).
    Encoded(Vec<u8>),
    /// Inbound: a decoded request within the limits.
    Decoded(Request),
    /// Inbound: a frame that was over the limit or undecodable; answered with a refusal.
    Invalid {
        /// Why it is refused.
        code: RefusalCode,
        /// What was wrong, naming the limit when there is one.
        message: String,
    },
}

/// A response as carried by the codec.
#[derive(Debug)]
pub(crate) enum ResponseFrame {
    /// Outbound: the canonical bytes to write.
    Encoded(Vec<u8>),
    /// Inbound: a decoded response.
    Decoded(Response),
}

/// The length-prefixed canonical-CBOR codec for `/renkei/relay/1`.
#[derive(Clone, Debug)]
pub(crate) struct RelayCodec {
    /// Largest frame body accepted or written, in bytes.
    message_bytes_max: usize,
    /// Request body bytes being read and decoded at once, over every stream of every
    /// connection: a frame waits here for room (and its sender on flow control) instead of
    /// every stream allocating its frame at once.
    budget: Arc<Semaphore>,
    budget_bytes: usize,
}

impl RelayCodec {
    /// A codec with this frame limit and this budget of request bytes in flight.
    pub(crate) fn new(message_bytes_max: usize, inbound_bytes_in_flight_max: usize) -> Self {
        let budget_bytes = inbound_bytes_in_flight_max.clamp(1, Semaphore::MAX_PERMITS);
        RelayCodec {
            message_bytes_max,
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
        }
    }
}

/// The refusal message for a frame over the limit.
pub(crate) fn too_large_message(what: &str, len: usize, max: usize) -> String {
    format!("{what} is {len} bytes, over this node's limit of {max} bytes (MESSAGE_BYTES_MAX)")
}

/// The refusal code for a decode error.
pub(crate) fn refusal_code(e: &DecodeError) -> RefusalCode {
    match e {
        DecodeError::TooLarge { .. } | DecodeError::TooMany { .. } => RefusalCode::TooLarge,
        _ => RefusalCode::Malformed,
    }
}

async fn read_len<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<usize> {
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    usize::try_from(u32::from_be_bytes(prefix))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "frame length does not fit"))
}

/// Reads exactly `len` body bytes, growing the buffer only as data arrives.
async fn read_body<T: AsyncRead + Unpin + Send>(io: &mut T, len: usize) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    (&mut *io).take(len as u64).read_to_end(&mut body).await?;
    if body.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame ended after {} of {len} announced bytes", body.len()),
        ));
    }
    Ok(body)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    what: &str,
    body: &[u8],
    max: usize,
) -> io::Result<()> {
    if body.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            too_large_message(what, body.len(), max),
        ));
    }
    let len = u32::try_from(body.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            too_large_message(what, body.len(), max),
        )
    })?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(body).await?;
    io.flush().await
}

impl libp2p::request_response::Codec for RelayCodec {
    type Protocol = StreamProtocol;
    type Request = RequestFrame;
    type Response = ResponseFrame;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<RequestFrame>
    where
        T: AsyncRead + Unpin + Send,
    {
        let len = read_len(io).await?;
        if len > self.message_bytes_max {
            // Drain so the sender can finish writing and read our refusal.
            let drained =
                futures::io::copy((&mut *io).take(len as u64), &mut futures::io::sink()).await?;
            tracing::info!(
                len,
                drained,
                max = self.message_bytes_max,
                "refusing an oversize request on /renkei/relay/1"
            );
            return Ok(RequestFrame::Invalid {
                code: RefusalCode::TooLarge,
                message: too_large_message("request", len, self.message_bytes_max),
            });
        }
        // Room for this frame in the budget (a frame larger than the whole budget takes
        // all of it), held while it is read and decoded.
        let want = u32::try_from(len.clamp(1, self.budget_bytes)).unwrap_or(u32::MAX);
        let _room = self
            .budget
            .acquire_many(want)
            .await
            .map_err(|_| io::Error::other("the request budget is closed"))?;
        let body = read_body(io, len).await?;
        Ok(match Request::decode(&body) {
            Ok(request) => RequestFrame::Decoded(request),
            Err(e) => RequestFrame::Invalid {
                code: refusal_code(&e),
                message: format!("cannot decode request: {e}"),
            },
        })
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<ResponseFrame>
    where
        T: AsyncRead + Unpin + Send,
    {
        let len = read_len(io).await?;
        if len > self.message_bytes_max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                too_large_message("response", len, self.message_bytes_max),
            ));
        }
        let body = read_body(io, len).await?;
        Response::decode(&body)
            .map(ResponseFrame::Decoded)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("cannot decode response: {e}"),
                )
            })
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: RequestFrame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = match req {
            RequestFrame::Encoded(bytes) => bytes,
            RequestFrame::Decoded(request) => request.encode(),
            RequestFrame::Invalid { message, .. } => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("refusing to send an invalid request: {message}"),
                ));
            }
        };
        write_frame(io, "request", &bytes, self.message_bytes_max).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: ResponseFrame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = match res {
            ResponseFrame::Encoded(bytes) => bytes,
            ResponseFrame::Decoded(response) => response.encode(),
        };
        write_frame(io, "response", &bytes, self.message_bytes_max).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;
    use libp2p::request_response::Codec;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut v = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn request_frame_is_length_prefixed_canonical_cbor() {
        let request = Request::DirectorySync {
            roster_serial: 3,
            cursor: 9,
        };
        let mut out = Cursor::new(Vec::new());
        let mut codec = RelayCodec::new(1024, 1 << 20);
        block_on(codec.write_request(&RELAY, &mut out, RequestFrame::Decoded(request.clone())))
            .unwrap();
        assert_eq!(out.get_ref(), &framed(&request.encode()));

        let mut input = Cursor::new(out.into_inner());
        match block_on(codec.read_request(&RELAY, &mut input)).unwrap() {
            RequestFrame::Decoded(r) => assert_eq!(r, request),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn oversize_request_is_refused_naming_the_limit() {
        let body = vec![0u8; 100];
        let mut input = Cursor::new(framed(&body));
        let mut codec = RelayCodec::new(50, 1 << 20);
        match block_on(codec.read_request(&RELAY, &mut input)).unwrap() {
            RequestFrame::Invalid { code, message } => {
                assert_eq!(code, RefusalCode::TooLarge);
                assert!(message.contains("limit of 50 bytes"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        // The body was drained.
        assert_eq!(input.position(), 104);
    }

    #[test]
    fn garbage_request_is_malformed() {
        let mut input = Cursor::new(framed(&[0xff, 0x00, 0x13]));
        let mut codec = RelayCodec::new(1024, 1 << 20);
        match block_on(codec.read_request(&RELAY, &mut input)).unwrap() {
            RequestFrame::Invalid { code, .. } => assert_eq!(code, RefusalCode::Malformed),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn oversize_response_and_write_are_errors_naming_the_limit() {
        let mut codec = RelayCodec::new(10, 1 << 20);
        let mut input = Cursor::new(framed(&[0u8; 11]));
        let e = block_on(codec.read_response(&RELAY, &mut input)).unwrap_err();
        assert!(e.to_string().contains("limit of 10 bytes"), "{e}");

        let mut out = Cursor::new(Vec::new());
        let e =
            block_on(codec.write_request(&RELAY, &mut out, RequestFrame::Encoded(vec![0u8; 11])))
                .unwrap_err();
        assert!(e.to_string().contains("limit of 10 bytes"), "{e}");
        assert!(out.get_ref().is_empty());
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let mut bytes = framed(&[1, 2, 3, 4]);
        bytes.truncate(6);
        let mut codec = RelayCodec::new(1024, 1 << 20);
        let e = block_on(codec.read_request(&RELAY, &mut Cursor::new(bytes))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
