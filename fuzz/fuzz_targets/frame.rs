//! Frame header and body: a stream of frames read one after another, as a connection reads
//! them. Every frame read must re-encode to exactly the bytes it consumed, and a length over
//! the limit (or zero) must be refused after reading only the 4-byte prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;
use securebank::error::ChannelError;
use securebank::frame::{self, FrameKind, LENGTH_BYTES};
use securebank::limits::MAX_FRAME_BODY_BYTES;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        let offset = data.len() - rest.len();
        match frame::read_frame(&mut rest) {
            Ok(frame) => {
                assert!(frame.payload.len() < MAX_FRAME_BODY_BYTES);
                let consumed = data.len() - rest.len() - offset;
                let raw = frame::encode_raw(&frame);
                assert_eq!(
                    raw,
                    &data[offset..offset + consumed],
                    "re-encoding differs from the wire"
                );
                if let Some(kind) = FrameKind::from_byte(frame.kind) {
                    assert_eq!(kind as u8, frame.kind);
                    assert_eq!(frame::encode(kind, &frame.payload), raw);
                }
            }
            Err(ChannelError::FrameTooLarge(length)) => {
                assert!(length as usize > MAX_FRAME_BODY_BYTES);
                assert_eq!(
                    data.len() - rest.len() - offset,
                    LENGTH_BYTES,
                    "read past a refused length"
                );
                break;
            }
            Err(ChannelError::EmptyFrame) => {
                assert_eq!(data.len() - rest.len() - offset, LENGTH_BYTES);
                break;
            }
            Err(ChannelError::Io(_)) => break,
            Err(other) => panic!("read_frame returned an unexpected error: {other:?}"),
        }
    }
});
