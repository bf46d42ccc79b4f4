//! The BEAM's compressed external term format, so a dirty NIF can produce
//! the exact bytes of `:erlang.term_to_binary(term, [:compressed])`.
//!
//! erts (external.c) compresses the encoded term, without its leading
//! version byte 131, with zlib's `deflateInit(level)` (window bits 15,
//! memory level 8, default strategy; `[:compressed]` is level 6) and frames
//! it as `<<131, 80, UncompressedSize::32, ZlibStream>>`, where the size
//! counts the bytes after the 131. It gives zlib an output buffer of the
//! uncompressed length minus those 6 header bytes and keeps the plain
//! encoding when the stream does not fit: the compressed form is used only
//! when it is no longer than the plain one. `flate2` here links the same
//! system zlib as the BEAM, so the stream bytes are the same.

use crate::{CoreError, CoreResult};
use flate2::{Compress, Compression, FlushCompress, Status};

/// The version byte every external term starts with.
pub const VERSION_MAGIC: u8 = 131;

/// The tag of a zlib-compressed external term (after `VERSION_MAGIC`).
pub const COMPRESSED_TAG: u8 = 80;

/// Header bytes of the compressed form: magic, tag, 32-bit size.
pub const HEADER_BYTES: usize = 6;

/// The level of `term_to_binary(term, [:compressed])` (zlib's default).
pub const DEFAULT_LEVEL: u32 = 6;

/// The compressed form of `etf` (a whole external term, starting with 131)
/// at zlib `level` (0-9), or `Ok(None)` when the BEAM would keep `etf` as
/// it is because compressing does not make it shorter.
///
/// Errors: `InvalidInput` when `etf` does not start with 131, is longer
/// than the 32-bit size field allows, or `level` is above 9; `Internal`
/// when zlib itself fails.
pub fn compress(etf: &[u8], level: u32) -> CoreResult<Option<Vec<u8>>> {
    let body = match etf.split_first() {
        Some((&VERSION_MAGIC, body)) => body,
        _ => return Err(invalid("not an external term (no leading 131)")),
    };
    let size = u32::try_from(body.len()).map_err(|_| invalid("term over 4 GiB"))?;
    if level > 9 {
        return Err(invalid("compression level above 9"));
    }
    let room = etf.len().saturating_sub(HEADER_BYTES);
    let mut out = vec![0u8; HEADER_BYTES + room];
    out[0] = VERSION_MAGIC;
    out[1] = COMPRESSED_TAG;
    out[2..HEADER_BYTES].copy_from_slice(&size.to_be_bytes());
    // One `Finish` call into the bounded buffer, like erts: the stream
    // ends only if all of it fits.
    let mut zlib = Compress::new(Compression::new(level), true);
    let status = zlib
        .compress(body, &mut out[HEADER_BYTES..], FlushCompress::Finish)
        .map_err(|e| CoreError::Internal(format!("zlib: {e}")))?;
    if status != Status::StreamEnd {
        return Ok(None);
    }
    let written = usize::try_from(zlib.total_out())
        .map_err(|_| CoreError::Internal("zlib output size".to_string()))?;
    out.truncate(HEADER_BYTES + written);
    Ok(Some(out))
}

fn invalid(detail: &str) -> CoreError {
    CoreError::InvalidInput(detail.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::ZlibDecoder;
    use std::io::Read;

    fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        ZlibDecoder::new(stream).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn frames_a_compressible_term() {
        // A binary of 1000 zero bytes: 131, 109, len32, bytes.
        let mut etf = vec![131, 109, 0, 0, 3, 232];
        etf.extend(std::iter::repeat_n(0u8, 1000));
        let out = compress(&etf, DEFAULT_LEVEL).unwrap().unwrap();
        assert_eq!(&out[..2], &[131, 80]);
        assert_eq!(u32::from_be_bytes(out[2..6].try_into().unwrap()), 1005);
        assert_eq!(inflate(&out[6..]), &etf[1..]);
        assert!(out.len() < etf.len());
    }

    #[test]
    fn keeps_incompressible_terms_plain() {
        // Pseudo-random bytes do not compress: zlib's stream is longer.
        let mut x: u32 = 12345;
        let mut etf = vec![131, 109, 0, 0, 1, 0];
        etf.extend((0..256).map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        }));
        assert_eq!(compress(&etf, DEFAULT_LEVEL).unwrap(), None);
        // Tiny terms have no room for the header at all.
        assert_eq!(compress(&[131, 97, 1], DEFAULT_LEVEL).unwrap(), None);
        assert_eq!(compress(&[131], DEFAULT_LEVEL).unwrap(), None);
    }

    #[test]
    fn used_exactly_when_no_longer_than_plain() {
        // Around the break-even point the result is never longer.
        for n in 0..200usize {
            let mut etf = vec![131, 107, 0, n as u8];
            etf.extend((0..n).map(|i| (i * 37 % 251) as u8));
            if let Some(out) = compress(&etf, DEFAULT_LEVEL).unwrap() {
                assert!(out.len() <= etf.len(), "n = {n}");
                assert_eq!(inflate(&out[6..]), &etf[1..]);
            }
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(compress(&[], 6), Err(CoreError::InvalidInput(_))));
        assert!(matches!(
            compress(&[80, 1, 2], 6),
            Err(CoreError::InvalidInput(_))
        ));
        assert!(matches!(
            compress(&[131, 97, 1], 10),
            Err(CoreError::InvalidInput(_))
        ));
    }
}
