//! `:erlang.external_size/1` from a term's external term format encoding.
//!
//! `external_size/1` is an upper bound of the encoded length: it counts
//! exactly what `term_to_binary/1` writes except in a local fun
//! (`NEW_FUN_EXT`), where it reserves 5 bytes (`INTEGER_EXT`) for each of
//! `OldIndex` and `OldUniq` even when the encoder writes 2
//! (`SMALL_INTEGER_EXT`, values below 256). `external_size` walks the
//! encoding and adds those 3 bytes back, funs nested in a fun's free
//! variables included. The walk is iterative (a count of terms still to
//! read), so nesting depth costs no stack.

const VERSION: u8 = 131;
const NEW_FLOAT: u8 = 70;
const BIT_BINARY: u8 = 77;
const NEW_PID: u8 = 88;
const NEW_PORT: u8 = 89;
const NEWER_REFERENCE: u8 = 90;
const SMALL_INTEGER: u8 = 97;
const INTEGER: u8 = 98;
const FLOAT: u8 = 99;
const ATOM: u8 = 100;
const REFERENCE: u8 = 101;
const PORT: u8 = 102;
const PID: u8 = 103;
const SMALL_TUPLE: u8 = 104;
const LARGE_TUPLE: u8 = 105;
const NIL: u8 = 106;
const STRING: u8 = 107;
const LIST: u8 = 108;
const BINARY: u8 = 109;
const SMALL_BIG: u8 = 110;
const LARGE_BIG: u8 = 111;
const NEW_FUN: u8 = 112;
const EXPORT: u8 = 113;
const NEW_REFERENCE: u8 = 114;
const SMALL_ATOM: u8 = 115;
const MAP: u8 = 116;
const ATOM_UTF8: u8 = 118;
const SMALL_ATOM_UTF8: u8 = 119;
const V4_PORT: u8 = 120;

/// Bytes `external_size/1` reserves for a `NEW_FUN_EXT` integer field.
const RESERVED_INT: usize = 5;

/// What `:erlang.external_size/1` returns for the term whose
/// `term_to_binary/1` output (version byte included) is `encoded`; `None`
/// if `encoded` is not one complete term in that format.
pub fn external_size(encoded: &[u8]) -> Option<usize> {
    let mut r = Reader {
        bytes: encoded,
        pos: 0,
    };
    if r.u8()? != VERSION {
        return None;
    }
    let mut pending: usize = 1;
    let mut slack = 0;
    while pending > 0 {
        pending -= 1;
        let (more, extra) = r.term()?;
        pending = pending.checked_add(more)?;
        slack += extra;
    }
    (r.pos == encoded.len()).then(|| encoded.len() + slack)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        (end <= self.bytes.len()).then(|| self.pos = end)
    }

    fn u8(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn uint(&mut self, width: usize) -> Option<usize> {
        let start = self.pos;
        self.skip(width)?;
        let bytes = self.bytes.get(start..self.pos)?;
        Some(bytes.iter().fold(0, |acc, b| (acc << 8) | usize::from(*b)))
    }

    /// Reads one term's own bytes; returns how many sub-terms follow it
    /// and the bytes `external_size/1` counts on top of the encoding.
    fn term(&mut self) -> Option<(usize, usize)> {
        let tag = self.u8()?;
        match tag {
            SMALL_TUPLE => Some((self.uint(1)?, 0)),
            LARGE_TUPLE => Some((self.uint(4)?, 0)),
            LIST => Some((self.uint(4)?.checked_add(1)?, 0)),
            MAP => Some((self.uint(4)?.checked_mul(2)?, 0)),
            EXPORT => Some((3, 0)),
            NEW_FUN => self.fun(),
            _ => self.scalar(tag).map(|()| (0, 0)),
        }
    }

    /// A local fun: its fixed header, module, old index and old uniq are
    /// read here; its pid and free variables follow as sub-terms.
    fn fun(&mut self) -> Option<(usize, usize)> {
        self.skip(4 + 1 + 16 + 4)?; // Size, Arity, Uniq, Index
        let free = self.uint(4)?;
        self.atom()?;
        let slack = self.fun_int()? + self.fun_int()?;
        Some((free.checked_add(1)?, slack))
    }

    /// `OldIndex` or `OldUniq`; returns the bytes reserved but not written.
    fn fun_int(&mut self) -> Option<usize> {
        match self.u8()? {
            SMALL_INTEGER => self.skip(1).map(|()| RESERVED_INT - 2),
            INTEGER => self.skip(4).map(|()| 0),
            _ => None,
        }
    }

    fn atom(&mut self) -> Option<()> {
        let tag = self.u8()?;
        self.atom_body(tag)
    }

    fn atom_body(&mut self, tag: u8) -> Option<()> {
        let len = match tag {
            ATOM | ATOM_UTF8 => self.uint(2)?,
            SMALL_ATOM | SMALL_ATOM_UTF8 => self.uint(1)?,
            _ => return None,
        };
        self.skip(len)
    }

    /// Every term without sub-terms (a pid's node atom is read here).
    fn scalar(&mut self, tag: u8) -> Option<()> {
        match tag {
            NIL => Some(()),
            SMALL_INTEGER => self.skip(1),
            INTEGER => self.skip(4),
            NEW_FLOAT => self.skip(8),
            FLOAT => self.skip(31),
            ATOM | ATOM_UTF8 | SMALL_ATOM | SMALL_ATOM_UTF8 => self.atom_body(tag),
            STRING => self.uint(2).and_then(|n| self.skip(n)),
            BINARY => self.uint(4).and_then(|n| self.skip(n)),
            BIT_BINARY => self.uint(4).and_then(|n| self.skip(n + 1)),
            SMALL_BIG => self.uint(1).and_then(|n| self.skip(n + 1)),
            LARGE_BIG => self.uint(4).and_then(|n| self.skip(n + 1)),
            _ => self.node_term(tag),
        }
    }

    /// Pids, ports and references: a node atom, then fixed-size fields.
    fn node_term(&mut self, tag: u8) -> Option<()> {
        let ids = match tag {
            NEWER_REFERENCE | NEW_REFERENCE => self.uint(2)?,
            _ => 0,
        };
        self.atom()?;
        let rest = match tag {
            PID => 4 + 4 + 1,
            NEW_PID => 4 + 4 + 4,
            PORT | REFERENCE => 4 + 1,
            NEW_PORT => 4 + 4,
            V4_PORT => 8 + 4,
            NEW_REFERENCE => 1 + 4 * ids,
            NEWER_REFERENCE => 4 + 4 * ids,
            _ => return None,
        };
        self.skip(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `term_to_binary(fn x -> x end)` from an `elixir` script (OTP 25):
    /// `external_size/1` says 90.
    const FUN: [u8; 87] = [
        131, 112, 0, 0, 0, 85, 1, 36, 125, 65, 115, 214, 208, 191, 148, 99, 142, 73, 79, 228, 233,
        190, 82, 0, 0, 0, 0, 0, 0, 0, 0, 100, 0, 17, 101, 108, 105, 120, 105, 114, 95, 99, 111,
        109, 112, 105, 108, 101, 114, 95, 48, 97, 0, 98, 1, 35, 234, 11, 88, 100, 0, 13, 110, 111,
        110, 111, 100, 101, 64, 110, 111, 104, 111, 115, 116, 0, 0, 0, 96, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn scalars_and_containers_are_their_length() {
        // term_to_binary({:a, [1, 300 | "b"], %{}, <<1::3>>, 2 ** 64})
        let bytes = [
            131, 104, 5, 100, 0, 1, 97, 108, 0, 0, 0, 2, 97, 1, 98, 0, 0, 1, 44, 109, 0, 0, 0, 1,
            98, 116, 0, 0, 0, 0, 77, 0, 0, 0, 1, 3, 32, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        assert_eq!(external_size(&bytes), Some(bytes.len()));
    }

    #[test]
    fn a_local_fun_counts_its_small_old_index_as_reserved() {
        assert_eq!(external_size(&FUN), Some(90));
    }

    #[test]
    fn funs_inside_containers_each_add_their_slack() {
        // [f, f] as LIST_EXT of two funs
        let mut bytes = vec![131, 108, 0, 0, 0, 2];
        bytes.extend_from_slice(&FUN[1..]);
        bytes.extend_from_slice(&FUN[1..]);
        bytes.push(NIL);
        assert_eq!(external_size(&bytes), Some(bytes.len() + 6));
    }

    #[test]
    fn malformed_input_is_none() {
        assert_eq!(external_size(&[]), None);
        assert_eq!(external_size(&[130, 106]), None);
        assert_eq!(external_size(&[131, 104, 2, 106]), None);
        assert_eq!(external_size(&[131, 106, 106]), None);
        assert_eq!(external_size(&FUN[..50]), None);
        assert_eq!(external_size(&[131, 200]), None);
    }
}
