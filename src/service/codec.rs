//! The protobuf codec of the Simulator service's stubs, server and client (set by `build.rs`).
//!
//! It is tonic-prost's codec with three differences. Together they took `Run` from 3.0–3.4 to
//! 4.0–4.5 M Send operations/s on this machine (`cargo bench --bench api -- stream`).
//!
//! - The `Run` stream's common commands and results are read and written by hand (`fast_path`),
//!   falling back to prost for anything else.
//! - A message that arrived in one piece (nearly all of them) is decoded from a plain byte slice.
//!   prost decodes through the `Buf` trait, and tonic's `DecodeBuf` advances a `BytesMut` for
//!   every varint read; over a slice each read is a pointer bump.
//! - A message that does not decode is the caller's fault, so it is refused with
//!   INVALID_ARGUMENT naming the message type, not tonic-prost's INTERNAL: no user input yields
//!   INTERNAL here.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{DecodeBuf, Decoder, EncodeBuf, Encoder};

/// The codec: `T` is encoded, `U` decoded.
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        ProtoCodec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProtoEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> ProtoEncoder<T> {
        ProtoEncoder(PhantomData)
    }

    fn decoder(&mut self) -> ProtoDecoder<U> {
        ProtoDecoder(PhantomData)
    }
}

/// Encodes `T` (as tonic-prost does).
#[derive(Debug, Clone)]
pub struct ProtoEncoder<T>(PhantomData<T>);

impl<T: Message + 'static> Encoder for ProtoEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        if super::fast_path::encode(&item, buf) {
            return Ok(());
        }
        // An EncodeBuf grows as needed, so encoding cannot run out of room.
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding a response: {e}")))
    }
}

/// Decodes `U`, from a slice when the message is contiguous.
#[derive(Debug, Clone)]
pub struct ProtoDecoder<U>(PhantomData<U>);

impl<U: Message + Default + 'static> Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        use prost::bytes::Buf;
        // tonic hands over the message alone, in one BytesMut: the first branch. The second is
        // there should a future tonic split it.
        let len = buf.remaining();
        let decoded = if buf.chunk().len() == len {
            let bytes = buf.chunk();
            let decoded = super::fast_path::decode::<U>(bytes).map_or_else(|| U::decode(bytes), Ok);
            buf.advance(len);
            decoded
        } else {
            U::decode(&mut *buf)
        };
        decoded.map(Some).map_err(|e| {
            let name = std::any::type_name::<U>()
                .rsplit("::")
                .next()
                .unwrap_or("message");
            Status::invalid_argument(format!("the message is not a valid {name}: {e}"))
        })
    }
}
