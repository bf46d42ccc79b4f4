//! Deflate of small bodies through zlib itself.
//!
//! flate2 makes its streams with zlib's default memory level, and every
//! reset of such a stream clears its 64 KiB hash table: for a body of a few
//! hundred bytes the clearing cost more than the compression (about 8 µs a
//! body, against about 2 for zstd). A stream made here has a small hash
//! table and window, so a reset clears 2 KiB. The output is the same kind
//! of zlib stream with the same preset dictionary, and the same inflate
//! reads it (a stream made with a smaller window than the reader's is
//! valid zlib); matches only reach back `WINDOW_BITS`, so bodies much bigger
//! than the window compress somewhat less.

use libz_sys as z;
use std::os::raw::{c_int, c_uint, c_ulong, c_void};
use std::ptr::null_mut;

/// Window of 4 KiB: a dictionary and a small body fit in it.
const WINDOW_BITS: c_int = 12;
/// Hash table of 2^(3 + 7) entries; the literal buffer holds 512 symbols,
/// so a small body is one deflate block.
const MEM_LEVEL: c_int = 3;

/// A deflate stream kept for reuse (one per thread: see `codec`).
pub(super) struct Deflater {
    // Boxed: zlib keeps a pointer back to the stream in its state.
    strm: Box<z::z_stream>,
}

unsafe extern "C" fn zalloc(_opaque: *mut c_void, items: c_uint, size: c_uint) -> *mut c_void {
    // SAFETY: calloc accepts any sizes (null when it cannot allocate, which
    // zlib reports as Z_MEM_ERROR).
    unsafe { libc::calloc(items as usize, size as usize) }
}

unsafe extern "C" fn zfree(_opaque: *mut c_void, address: *mut c_void) {
    // SAFETY: zlib frees only what `zalloc` gave it.
    unsafe { libc::free(address) }
}

fn check(rc: c_int, what: &str) -> Result<(), String> {
    match rc {
        z::Z_OK => Ok(()),
        rc => Err(format!("deflate: {what} failed ({rc})")),
    }
}

impl Deflater {
    /// A stream compressing at `level` (0-9) with zlib framing.
    pub(super) fn new(level: c_int) -> Result<Deflater, String> {
        let mut strm = Box::new(z::z_stream {
            next_in: null_mut(),
            avail_in: 0,
            total_in: 0,
            next_out: null_mut(),
            avail_out: 0,
            total_out: 0,
            msg: null_mut(),
            state: null_mut(),
            zalloc,
            zfree,
            opaque: null_mut(),
            data_type: 0,
            adler: 0,
            reserved: 0,
        });
        let size = c_int::try_from(std::mem::size_of::<z::z_stream>()).unwrap_or(c_int::MAX);
        // SAFETY: `strm` is a zeroed stream with valid allocation functions,
        // at a stable address (boxed), and the version and size are the
        // library's own, as `deflateInit2` requires.
        let rc = unsafe {
            z::deflateInit2_(
                &mut *strm,
                level,
                z::Z_DEFLATED,
                WINDOW_BITS,
                MEM_LEVEL,
                // Fixed Huffman codes: a small body's block then carries no
                // code tables of its own, which zlib would scan and write
                // for each body (`examples/warm_cost`: 3.6 against 4.4 µs
                // a body, for one byte more per record).
                z::Z_FIXED,
                z::zlibVersion(),
                size,
            )
        };
        check(rc, "init")?;
        Ok(Deflater { strm })
    }

    /// Appends to `out` the zlib stream of `raw` compressed with the preset
    /// dictionary `dict`.
    pub(super) fn compress(
        &mut self,
        dict: &[u8],
        raw: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let too_big = || "deflate: input too big".to_string();
        let dict_len = c_uint::try_from(dict.len()).map_err(|_| too_big())?;
        let raw_len = c_uint::try_from(raw.len()).map_err(|_| too_big())?;
        let strm: &mut z::z_stream = &mut self.strm;
        // SAFETY: the stream was initialized by `new` and is only used by
        // its owner; `dict` is valid for `dict_len` bytes during the call.
        unsafe {
            check(z::deflateReset(strm), "reset")?;
            check(
                z::deflateSetDictionary(strm, dict.as_ptr(), dict_len),
                "dictionary",
            )?;
        }
        strm.next_in = raw.as_ptr().cast_mut();
        strm.avail_in = raw_len;
        // SAFETY: as above (the bound is computed after the dictionary is
        // set, as its header field counts in the bound).
        let mut room = unsafe { z::deflateBound(strm, c_ulong::from(raw_len)) } as usize;
        let result = loop {
            let start = out.len();
            out.reserve(room);
            let avail = c_uint::try_from(room).map_err(|_| too_big())?;
            // SAFETY: `out` has `room` spare bytes after its length; zlib
            // writes at most `avail_out` of them and reads `avail_in` bytes
            // of `raw`, which outlives the call.
            let rc = unsafe {
                strm.next_out = out.as_mut_ptr().add(start);
                strm.avail_out = avail;
                let rc = z::deflate(strm, z::Z_FINISH);
                out.set_len(start + (room - strm.avail_out as usize));
                rc
            };
            match rc {
                z::Z_STREAM_END => break Ok(()),
                // Out of room (the bound should prevent it): more.
                z::Z_OK | z::Z_BUF_ERROR => room = room.max(64),
                rc => break Err(format!("deflate: compress failed ({rc})")),
            }
        };
        // No pointer into `raw` or `out` outlives the call.
        strm.next_in = null_mut();
        strm.avail_in = 0;
        strm.next_out = null_mut();
        strm.avail_out = 0;
        result
    }
}

impl Drop for Deflater {
    fn drop(&mut self) {
        // SAFETY: the stream was initialized by `new` and is ended once.
        unsafe {
            z::deflateEnd(&mut *self.strm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Deflater;
    use flate2::{Decompress, FlushDecompress};

    /// What the tier's inflate (zlib framing, default window) reads back.
    fn inflate(dict: &[u8], stream: &[u8], cap: usize) -> Vec<u8> {
        let mut d = Decompress::new(true);
        let mut out = Vec::with_capacity(cap);
        loop {
            let consumed = d.total_in() as usize;
            match d.decompress_vec(&stream[consumed..], &mut out, FlushDecompress::Finish) {
                Ok(flate2::Status::StreamEnd) => return out,
                Ok(_) => out.reserve(cap.max(64)),
                Err(e) if e.needs_dictionary().is_some() => {
                    d.set_dictionary(dict).unwrap();
                }
                Err(e) => panic!("inflate: {e}"),
            };
        }
    }

    #[test]
    fn streams_read_back_with_the_dictionary_and_a_reused_stream() {
        let dict = b"event_type correlation_id Elixir.DateTime".repeat(8);
        let mut d = Deflater::new(1).unwrap();
        let pseudo: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"x".to_vec(),
            b"event_type correlation_id data ".repeat(12),
            pseudo.clone(),
            // Bigger than the window, and hardly compressible: the bound
            // and the output loop are exercised.
            pseudo.iter().rev().copied().collect(),
        ];
        for raw in &inputs {
            let mut out = b"head".to_vec();
            d.compress(&dict, raw, &mut out).unwrap();
            assert_eq!(&out[..4], b"head");
            assert_eq!(&inflate(&dict, &out[4..], raw.len()), raw);
        }
        // The dictionary is what makes a small body small.
        let body = b"event_type correlation_id Elixir.DateTime".to_vec();
        let mut out = Vec::new();
        d.compress(&dict, &body, &mut out).unwrap();
        assert!(out.len() < body.len() / 2, "{} bytes", out.len());
    }
}
