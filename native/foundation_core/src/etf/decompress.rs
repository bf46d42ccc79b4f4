//! The inflating half of `:erlang.binary_to_term/2`, so a dirty NIF can
//! decode a compressed external term (`enif_binary_to_term` only decodes
//! the plain form).
//!
//! erts (external.c, `binary2term_prepare` and the `B2TUncompressChunk`
//! state) treats a binary as compressed when it is `<<131, 80, Size::32,
//! Stream/binary>>`: at least 4 size bytes after the tag, else the tag is
//! left to the term decoder (which rejects it). It inflates `Stream` with
//! zlib into exactly `Size` bytes and accepts only when zlib reports the
//! end of the stream and exactly `Size` bytes came out: fewer (stream
//! ended early or input exhausted), more (output full before the end) and
//! corrupt streams are `badarg`. Input after the end of the zlib stream is
//! ignored, and so are bytes of the inflated data after the term. The
//! inflated data is then decoded as the plain form `<<131, Data/binary>>`.

use super::compress::{COMPRESSED_TAG, VERSION_MAGIC};
use crate::{CoreError, CoreResult};
use flate2::{Decompress, FlushDecompress, Status};

/// Output bytes the first inflate call gets; later calls double the
/// buffer up to the announced size, so a header announcing 4 GiB over a
/// few bytes of stream allocates no more than the stream produces.
const FIRST_CHUNK: usize = 64 * 1024;

/// `Ok(None)` when `etf` is not in the compressed form (decode it as it
/// is), `Ok(Some(plain))` with `plain` = `<<131, Data/binary>>` when it is
/// and inflates as erts requires.
///
/// Errors: `InvalidInput` when the compressed form is corrupt, truncated,
/// or inflates to another length than its header announces (where
/// `binary_to_term/2` raises `badarg`).
pub fn decompress(etf: &[u8]) -> CoreResult<Option<Vec<u8>>> {
    let (size, stream) = match etf {
        [VERSION_MAGIC, COMPRESSED_TAG, a, b, c, d, stream @ ..] => {
            (u32::from_be_bytes([*a, *b, *c, *d]), stream)
        }
        _ => return Ok(None),
    };
    let size = usize::try_from(size).map_err(|_| invalid())?;
    let mut out = vec![VERSION_MAGIC];
    let mut zlib = Decompress::new(true);
    loop {
        let done = out.len() - 1;
        let chunk = (size - done).min(done.max(FIRST_CHUNK));
        out.resize(out.len() + chunk, 0);
        let consumed = usize::try_from(zlib.total_in()).map_err(|_| invalid())?;
        let input = stream.get(consumed..).ok_or_else(invalid)?;
        let status = zlib
            .decompress(input, &mut out[1 + done..], FlushDecompress::None)
            .map_err(|_| invalid())?;
        let produced = usize::try_from(zlib.total_out()).map_err(|_| invalid())?;
        out.truncate(1 + produced);
        let stalled = produced == done && zlib.total_in() == consumed as u64;
        match status {
            Status::StreamEnd if produced == size => return Ok(Some(out)),
            Status::StreamEnd => return Err(invalid()),
            _ if produced == size || stalled => return Err(invalid()),
            _ => {}
        }
    }
}

fn invalid() -> CoreError {
    CoreError::InvalidInput("invalid or unsafe external representation of a term".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etf::compress;

    fn framed(size: u32, stream: &[u8]) -> Vec<u8> {
        let mut v = vec![VERSION_MAGIC, COMPRESSED_TAG];
        v.extend_from_slice(&size.to_be_bytes());
        v.extend_from_slice(stream);
        v
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        use flate2::write::ZlibEncoder;
        use std::io::Write;
        let mut e = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn plain_forms_are_left_to_the_decoder() {
        for etf in [
            &[131u8, 97, 1][..],
            &[131, 80, 0, 0, 1],
            &[],
            &[80, 0, 0, 0, 0, 0],
        ] {
            assert_eq!(decompress(etf).unwrap(), None);
        }
    }

    #[test]
    fn round_trip_of_compress_big_and_small() {
        for len in [
            1_000usize,
            FIRST_CHUNK - 1,
            FIRST_CHUNK,
            3 * FIRST_CHUNK + 7,
            1 << 20,
        ] {
            let mut etf = vec![131u8, 109];
            etf.extend_from_slice(&(len as u32).to_be_bytes());
            etf.extend((0..len).map(|i| (i % 7) as u8));
            let packed = compress(&etf, 6).unwrap().unwrap();
            assert_eq!(decompress(&packed).unwrap(), Some(etf));
        }
    }

    #[test]
    fn the_inflated_length_must_be_the_announced_one() {
        let data = b"abcabcabcabcabcabc".repeat(100);
        let stream = zlib(&data);
        let n = data.len() as u32;
        let mut want = vec![131u8];
        want.extend_from_slice(&data);
        assert_eq!(decompress(&framed(n, &stream)).unwrap(), Some(want));
        for size in [0, 1, n - 1, n + 1, u32::MAX] {
            assert!(decompress(&framed(size, &stream)).is_err(), "size {size}");
        }
    }

    #[test]
    fn input_after_the_stream_is_ignored_corrupt_or_short_input_is_not() {
        let data = vec![7u8; 5_000];
        let stream = zlib(&data);
        let mut trailing = stream.clone();
        trailing.extend_from_slice(&[1, 2, 3]);
        assert!(decompress(&framed(5_000, &trailing)).unwrap().is_some());
        assert!(decompress(&framed(5_000, &stream[..stream.len() - 1])).is_err());
        assert!(decompress(&framed(5_000, &[])).is_err());
        let mut bad_check = stream.clone();
        *bad_check.last_mut().unwrap() ^= 1;
        assert!(decompress(&framed(5_000, &bad_check)).is_err());
        assert!(decompress(&framed(5_000, b"not zlib at all")).is_err());
    }
}
