//! Record and block layout of the warm tier, and their compression.
//!
//! A record (one event) is:
//!
//! ```text
//! crc32 u32 | version u8 | codec u8 | seq u64 | sys_ts i64 |
//! type_len u16 | type | cid_flag u8 | cid_len u32 | cid | raw_len u32 | body
//! ```
//!
//! all integers big-endian, the CRC-32 over everything after it. `body` is
//! the event's disk form (external term format, see the NIF's
//! `disk_body`). Records are kept in blocks (one engine entry each, see
//! [`block`]); with `:zstd` or `:gzip` a block's records are compressed
//! together ([`pack_block`]) and each record's body is raw (codec 0).
//!
//! Earlier versions compressed each body alone (codec 1: zlib, codec 2:
//! zstd, both from a built-in dictionary of the byte strings every event
//! carried; codec 3: zstd with a dictionary trained on the directory's
//! events, kept in it). Their records still read.

use flate2::{Crc, Decompress, FlushDecompress};
use once_cell::sync::Lazy;
use std::cell::RefCell;

/// Compression of the warm tier (`storage.warm.compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Records stored raw.
    #[default]
    None,
    /// Each block's records deflated together (the gzip algorithm).
    Gzip,
    /// Each block's records compressed together by Zstandard.
    Zstd,
}

impl Compression {
    fn tag(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Zstd => 2,
        }
    }
}

const VERSION: u8 = 1;
#[cfg(test)]
const ZSTD_LEVEL: i32 = -1;

/// The decoded fixed fields of a record (the body stays compressed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Arrival sequence.
    pub seq: u64,
    /// `timestamp + time offset` of the storing lifetime.
    pub sys_ts: i64,
    /// Event type name.
    pub event_type: Vec<u8>,
    /// Correlation id bytes, if any.
    pub correlation_id: Option<Vec<u8>>,
}

/// The atom names and module names found in every stored event, as they
/// appear in external term format (SMALL_ATOM_UTF8_EXT), plus common values.
static DICT: Lazy<Vec<u8>> = Lazy::new(|| {
    let atoms: [&str; 30] = [
        "Elixir.DateTime",
        "Calendar.ISO",
        "calendar",
        "day",
        "hour",
        "microsecond",
        "minute",
        "month",
        "second",
        "std_offset",
        "time_zone",
        "utc_offset",
        "year",
        "zone_abbr",
        "nonode@nohost",
        "nil",
        "true",
        "false",
        "Elixir.ElixirScope.Foundation.Types.Event",
        "__struct__",
        "correlation_id",
        "data",
        "event_id",
        "event_type",
        "node",
        "parent_id",
        "pid",
        "timestamp",
        "wall_time",
        "__struct__",
    ];
    let mut dict = Vec::with_capacity(512);
    for a in atoms {
        dict.push(119);
        dict.push(a.len() as u8);
        dict.extend_from_slice(a.as_bytes());
    }
    // The event map header and the UTC strings of a DateTime.
    dict.extend_from_slice(&[131, 116, 0, 0, 0, 10]);
    dict.extend_from_slice(b"m\x00\x00\x00\x07Etc/UTCm\x00\x00\x00\x03UTC");
    dict
});

static ZSTD_DEC: Lazy<zstd::dict::DecoderDictionary<'static>> =
    Lazy::new(|| zstd::dict::DecoderDictionary::copy(&DICT));

/// A body compressed alone by `codec`, as earlier versions wrote records
/// (the tests write such records to read them): zstd and zlib streams
/// from the built-in dictionary, zstd frames without their length and
/// dictionary id (the record's header gives both).
#[cfg(test)]
fn compress(codec: Compression, raw: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    match codec {
        Compression::None => out.extend_from_slice(raw),
        Compression::Zstd => {
            use zstd::zstd_safe::CParameter::{ContentSizeFlag, DictIdFlag};
            let mut c = zstd::bulk::Compressor::with_dictionary(ZSTD_LEVEL, &DICT)
                .map_err(|e| e.to_string())?;
            for p in [ContentSizeFlag(false), DictIdFlag(false)] {
                c.set_parameter(p).map_err(|e| e.to_string())?;
            }
            out.extend_from_slice(&c.compress(raw).map_err(|e| e.to_string())?);
        }
        Compression::Gzip => {
            let mut c = flate2::Compress::new(flate2::Compression::fast(), true);
            c.set_dictionary(&DICT).map_err(|e| e.to_string())?;
            let start = out.len();
            out.reserve(raw.len() + 64);
            c.compress_vec(raw, out, flate2::FlushCompress::Finish)
                .map_err(|e| e.to_string())?;
            if c.total_in() as usize != raw.len() || out.len() == start {
                return Err("deflate: output buffer too small".into());
            }
        }
    }
    Ok(())
}

/// A trained zstd dictionary of a directory. Earlier versions trained one
/// once a directory held enough events and compressed later bodies with it
/// (codec 3: `dict_id u32 | zstd frame`); this one compresses blocks
/// instead (see [`pack_block`]) and reads those records with it.
pub struct Trained {
    dec: zstd::dict::DecoderDictionary<'static>,
}

impl Trained {
    /// A dictionary read back.
    pub fn new(bytes: Vec<u8>) -> Trained {
        Trained {
            dec: zstd::dict::DecoderDictionary::copy(&bytes),
        }
    }

    /// Trains a dictionary of about `size` bytes from `samples` (`None`:
    /// they do not make one), as earlier versions did (for the tests of
    /// reading their records).
    ///
    /// The trainer is zstd's default one (fast cover, trying a few segment
    /// sizes) with a frequency table of 2^16 entries instead of 2^20: the
    /// default allocates and touches about 6 MiB, and in a VM whose other
    /// threads run on the other cores every first touch of a page costs an
    /// interrupt to each of them, so a training took 106-140 ms of the
    /// apply thread under load (13-67 ms now). On the warm storage bench's
    /// events its dictionaries compress as well as the default's (2^14
    /// entries made records 4.5 bytes bigger).
    #[cfg(test)]
    pub fn train(samples: &[Vec<u8>], size: usize) -> Option<Vec<u8>> {
        use zstd::zstd_safe::zstd_sys as sys;
        let flat = samples.concat();
        let sizes: Vec<usize> = samples.iter().map(Vec::len).collect();
        let count = u32::try_from(sizes.len()).ok()?;
        let mut params = sys::ZDICT_fastCover_params_t {
            k: 0,
            d: 8,
            f: 16,
            steps: 4,
            nbThreads: 1,
            splitPoint: 0.0,
            accel: 1,
            shrinkDict: 0,
            shrinkDictMaxRegression: 0,
            zParams: sys::ZDICT_params_t {
                compressionLevel: 0,
                notificationLevel: 0,
                dictID: 0,
            },
        };
        let mut bytes = vec![0u8; size];
        // SAFETY: every pointer is to a live buffer of the length passed
        // with it (`sizes` sums to `flat.len()`), and the trainer writes at
        // most `size` bytes into `bytes`.
        let n = unsafe {
            sys::ZDICT_optimizeTrainFromBuffer_fastCover(
                bytes.as_mut_ptr().cast(),
                size,
                flat.as_ptr().cast(),
                sizes.as_ptr(),
                count,
                &mut params,
            )
        };
        // SAFETY: `ZDICT_isError` only reads its argument.
        if unsafe { sys::ZDICT_isError(n) } != 0 {
            return None;
        }
        bytes.truncate(n);
        Some(bytes)
    }
}

/// [`unsealed`] compressing with a trained dictionary `dict` numbered `id`
/// (codec 3), as earlier versions wrote records (for the tests of reading
/// them).
#[cfg(test)]
pub fn unsealed_trained(
    id: u32,
    dict: &[u8],
    sys_ts: i64,
    event_type: &[u8],
    correlation_id: Option<&[u8]>,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let mut out = head(3, sys_ts, event_type, correlation_id, body.len())?;
    out.extend_from_slice(&id.to_be_bytes());
    let mut c =
        zstd::bulk::Compressor::with_dictionary(ZSTD_LEVEL, dict).map_err(|e| e.to_string())?;
    use zstd::zstd_safe::CParameter::{ContentSizeFlag, DictIdFlag};
    for p in [ContentSizeFlag(false), DictIdFlag(false)] {
        c.set_parameter(p).map_err(|e| e.to_string())?;
    }
    let frame = c.compress(body).map_err(|e| e.to_string())?;
    out.extend_from_slice(&frame);
    Ok(out)
}

thread_local! {
    /// Each thread's decompression contexts, made once (making one costs
    /// more than decompressing a small event).
    static ZSTD_D: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> = const { RefCell::new(None) };
    static INFLATE: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// A zstd frame of at most `raw_len` bytes decompressed with `ddict`
/// (`None` if it is damaged, bigger, or made with another dictionary).
fn zstd_decompress(
    ddict: &zstd::zstd_safe::DDict<'_>,
    src: &[u8],
    raw_len: usize,
) -> Option<Vec<u8>> {
    ZSTD_D.with(|cell| {
        let mut slot = cell.borrow_mut();
        let dctx = slot.get_or_insert_with(zstd::zstd_safe::DCtx::create);
        let mut out = Vec::with_capacity(raw_len);
        dctx.decompress_using_ddict(&mut out, src, ddict).ok()?;
        Some(out)
    })
}

/// Finds a trained dictionary by id.
pub type Dicts<'a> = &'a dyn Fn(u32) -> Option<std::sync::Arc<Trained>>;

fn decompress(codec: u8, body: &[u8], raw_len: usize, dicts: Dicts) -> Option<Vec<u8>> {
    match codec {
        0 => Some(body.to_vec()),
        3 => {
            let id = u32::from_be_bytes(body.get(..4)?.try_into().ok()?);
            let trained = dicts(id)?;
            zstd_decompress(trained.dec.as_ddict(), &body[4..], raw_len)
        }
        2 => zstd_decompress(ZSTD_DEC.as_ddict(), body, raw_len),
        1 => INFLATE.with(|cell| {
            let mut slot = cell.borrow_mut();
            let d = slot.get_or_insert_with(|| Decompress::new(true));
            d.reset(true);
            let mut out = Vec::with_capacity(raw_len);
            loop {
                let consumed = d.total_in() as usize;
                match d.decompress_vec(&body[consumed..], &mut out, FlushDecompress::Finish) {
                    Ok(flate2::Status::StreamEnd) => break,
                    Ok(_) if out.len() >= raw_len => return None,
                    Ok(_) => continue,
                    Err(e) if e.needs_dictionary().is_some() => d.set_dictionary(&DICT).ok()?,
                    Err(_) => return None,
                };
            }
            Some(out)
        }),
        _ => None,
    }
}

/// CRC-32 (IEEE) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = Crc::new();
    crc.update(bytes);
    crc.sum()
}

/// Encodes a record (compressing `body`).
#[cfg(test)]
pub fn encode(codec: Compression, header: &Header, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut record = unsealed_with(
        codec,
        header.sys_ts,
        &header.event_type,
        header.correlation_id.as_deref(),
        body,
    )?;
    seal(&mut record, header.seq);
    Ok(record)
}

/// Builds a record around `body` (raw: blocks are compressed whole, see
/// [`pack_block`]), without its arrival sequence and checksum: [`seal`]
/// adds them when the record is written. Callers build records in
/// parallel; the writer only seals.
pub fn unsealed(
    sys_ts: i64,
    event_type: &[u8],
    correlation_id: Option<&[u8]>,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let mut out = head(
        Compression::None.tag(),
        sys_ts,
        event_type,
        correlation_id,
        body.len(),
    )?;
    out.extend_from_slice(body);
    Ok(out)
}

/// [`unsealed`] with the body compressed alone by `codec`, as earlier
/// versions wrote records (the tests write such records to read them).
#[cfg(test)]
fn unsealed_with(
    codec: Compression,
    sys_ts: i64,
    event_type: &[u8],
    correlation_id: Option<&[u8]>,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let mut out = head(codec.tag(), sys_ts, event_type, correlation_id, body.len())?;
    compress(codec, body, &mut out)?;
    Ok(out)
}

/// A record up to its body.
fn head(
    tag: u8,
    sys_ts: i64,
    event_type: &[u8],
    correlation_id: Option<&[u8]>,
    body_len: usize,
) -> Result<Vec<u8>, String> {
    let raw_len = u32::try_from(body_len).map_err(|_| "event too large")?;
    let type_len = u16::try_from(event_type.len()).map_err(|_| "event type too long")?;
    let cid_len = correlation_id.map_or(0, |c| c.len() + 4);
    let mut out = Vec::with_capacity(body_len + event_type.len() + cid_len + 64);
    out.extend_from_slice(&[0; 4]);
    out.push(VERSION);
    out.push(tag);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&sys_ts.to_be_bytes());
    out.extend_from_slice(&type_len.to_be_bytes());
    out.extend_from_slice(event_type);
    match correlation_id {
        Some(cid) => {
            out.push(1);
            let len = u32::try_from(cid.len()).map_err(|_| "correlation id too long")?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(cid);
        }
        None => out.push(0),
    }
    out.extend_from_slice(&raw_len.to_be_bytes());
    Ok(out)
}

/// Sets an [`unsealed`] record's arrival sequence and checksum.
pub fn seal(record: &mut [u8], seq: u64) {
    record[6..14].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32(&record[4..]);
    record[..4].copy_from_slice(&crc.to_be_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
}

/// A record whose checksum holds, split into header and compressed body.
pub struct Parsed<'a> {
    /// Fixed fields.
    pub header: Header,
    codec: u8,
    raw_len: usize,
    body: &'a [u8],
}

impl Parsed<'_> {
    /// The event in external term format (`None`: undecodable body).
    #[cfg(test)]
    pub fn body(&self) -> Option<Vec<u8>> {
        self.body_with(&|_| None)
    }

    /// [`Parsed::body`], finding trained dictionaries with `dicts`.
    pub fn body_with(&self, dicts: Dicts) -> Option<Vec<u8>> {
        decompress(self.codec, self.body, self.raw_len, dicts).filter(|b| b.len() == self.raw_len)
    }
}

/// Parses a record; `None` when the checksum or the layout is wrong.
pub fn parse(record: &[u8]) -> Option<Parsed<'_>> {
    let mut r = Reader(record);
    let crc = u32::from_be_bytes(r.array()?);
    if crc32(r.0) != crc {
        return None;
    }
    let [version, codec] = r.array()?;
    if version != VERSION {
        return None;
    }
    let seq = u64::from_be_bytes(r.array()?);
    let sys_ts = i64::from_be_bytes(r.array()?);
    let type_len = u16::from_be_bytes(r.array()?) as usize;
    let event_type = r.take(type_len)?.to_vec();
    let correlation_id = match r.array::<1>()? {
        [0] => None,
        _ => {
            let len = u32::from_be_bytes(r.array()?) as usize;
            Some(r.take(len)?.to_vec())
        }
    };
    let raw_len = u32::from_be_bytes(r.array()?) as usize;
    Some(Parsed {
        header: Header {
            seq,
            sys_ts,
            event_type,
            correlation_id,
        },
        codec,
        raw_len,
        body: r.0,
    })
}

/// First byte of a block (see [`block`]).
const BLOCK_MAGIC: u8 = 0xB1;
/// Bytes of a block before its table: magic, count, table checksum.
const BLOCK_HEAD: usize = 1 + 2 + 4;
/// Bytes of one table entry: id and record length.
const BLOCK_SLOT: usize = 8 + 4;

/// Packs records (each sealed, with its own checksum) into one engine value:
///
/// ```text
/// magic u8 | count u16 | crc32 u32 | (id u64 | len u32) * count | records
/// ```
///
/// the CRC-32 over the table. One engine entry per block instead of one
/// per event is most of what the engine costs per event (its batch,
/// memtable and journal work is per entry). At most `u16::MAX` records.
pub fn block(records: &[(u64, &[u8])]) -> Vec<u8> {
    let records = &records[..records.len().min(usize::from(u16::MAX))];
    let bytes: usize = records.iter().map(|(_, r)| r.len()).sum();
    let size = BLOCK_HEAD + records.len() * BLOCK_SLOT + bytes;
    let mut out = table_head(BLOCK_MAGIC, records.len(), size);
    for (id, record) in records {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&(record.len() as u32).to_be_bytes());
    }
    seal_table(&mut out);
    for (_, record) in records {
        out.extend_from_slice(record);
    }
    out
}

/// A block's head (`magic`, `count`, a checksum left to [`seal_table`]),
/// in a buffer of `size` bytes.
fn table_head(magic: u8, count: usize, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    out.push(magic);
    out.extend_from_slice(&(count as u16).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out
}

/// Writes the checksum of the table that follows a block's head (`out`
/// holds the head and the table).
fn seal_table(out: &mut [u8]) {
    let crc = crc32(&out[BLOCK_HEAD..]);
    out[3..7].copy_from_slice(&crc.to_be_bytes());
}

/// A block's table (entries of `slot` bytes) after its head, read from
/// `r`: `None` when the block's first byte is not one of `magics` or the
/// table fails its checksum.
fn checked_table<'a>(r: &mut Reader<'a>, magics: &[u8], slot: usize) -> Option<&'a [u8]> {
    let [magic] = r.array()?;
    if !magics.contains(&magic) {
        return None;
    }
    let count = usize::from(u16::from_be_bytes(r.array()?));
    let crc = u32::from_be_bytes(r.array()?);
    let table = r.take(count.checked_mul(slot)?)?;
    (crc32(table) == crc).then_some(table)
}

/// The (id, record) slots of a block, in order; `None` when its table is
/// damaged (its records are then unknown). The records are not checked
/// here: each has its own checksum ([`parse`]).
pub fn block_slots(block: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    let mut r = Reader(block);
    let table = checked_table(&mut r, &[BLOCK_MAGIC], BLOCK_SLOT)?;
    let mut slots = Vec::with_capacity(table.len() / BLOCK_SLOT);
    for entry in table.chunks_exact(BLOCK_SLOT) {
        let id = u64::from_be_bytes(entry[..8].try_into().ok()?);
        let len = u32::from_be_bytes(entry[8..].try_into().ok()?) as usize;
        slots.push((id, r.take(len)?));
    }
    Some(slots)
}

/// The record of `id` in a block: `None` when the table is damaged,
/// `Some(None)` when the block does not hold it.
pub fn block_find(block: &[u8], id: u64) -> Option<Option<&[u8]>> {
    let slots = block_slots(block)?;
    Some(slots.into_iter().find(|&(i, _)| i == id).map(|(_, r)| r))
}

/// First byte of a block whose records are compressed together (zstd):
///
/// ```text
/// magic u8 | count u16 | crc32 u32 | (id u64 | len u32 | charge u32) * count
///   | zstd frame of the records
/// ```
///
/// the CRC-32 over the table, the records raw inside (each still with its
/// checksum). Compressed one by one, small bodies cost zstd its fixed work
/// per frame (entropy tables, context reset: about 0.5 µs a body of 160
/// bytes here) and come out at about 43 bytes; a block of 32 of them takes
/// about 0.2 µs a body and 18 bytes. A record's `charge` is its share of
/// the compressed bytes, counted against the disk bound while it is stored
/// (set when the record is first written, kept when its block is
/// rewritten, so the count given back is the count taken).
const PACKED_MAGIC: u8 = 0xB2;
/// First byte of a packed block whose records are deflated together
/// (`:gzip`, zlib framing, read as records are).
const PACKED_GZIP: u8 = 0xB3;
/// Bytes of one table entry of a packed block: id, record length, charge.
const PACKED_SLOT: usize = 8 + 4 + 4;
/// Level of block compression: zstd's fastest positive-ratio setting
/// (level 1 took 40% longer for 1% less).
const BLOCK_LEVEL: i32 = -1;

thread_local! {
    /// Each thread's block compressor, made once.
    static BLOCK_C: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static BLOCK_GZ: RefCell<Option<flate2::Compress>> = const { RefCell::new(None) };
}

/// `raw` as one zstd frame (without its length: the table gives it).
fn zstd_block(raw: &[u8]) -> Option<Vec<u8>> {
    BLOCK_C.with(|cell| {
        let mut slot = cell.borrow_mut();
        let c = match &mut *slot {
            Some(c) => c,
            None => {
                let mut c = zstd::bulk::Compressor::new(BLOCK_LEVEL).ok()?;
                c.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(false))
                    .ok()?;
                slot.insert(c)
            }
        };
        c.compress(raw).ok()
    })
}

/// `raw` as one zlib stream at level 1, with zlib's own stream settings: a
/// small window and hash table (which suited bodies deflated one by one)
/// made a block of 32 bodies take about 1.5 µs a body, these about 0.9 (a
/// reset clears 64 KiB of hash table once a block).
fn gzip_block(raw: &[u8]) -> Option<Vec<u8>> {
    BLOCK_GZ.with(|cell| {
        let mut slot = cell.borrow_mut();
        let c =
            slot.get_or_insert_with(|| flate2::Compress::new(flate2::Compression::fast(), true));
        c.reset();
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        loop {
            let read = c.total_in() as usize;
            match c.compress_vec(&raw[read..], &mut out, flate2::FlushCompress::Finish) {
                Ok(flate2::Status::StreamEnd) => return Some(out),
                Ok(_) => out.reserve(out.capacity().max(64)),
                Err(_) => return None,
            }
        }
    })
}

/// A block of `records` for a tier compressing with `compression`: packed
/// (compressed together) for zstd and gzip, else [`block`]. `charges` gives the
/// records' charges when they move from another block; else they are set
/// here. Returns the block and the records' charges.
pub fn pack_block(
    records: &[(u64, &[u8])],
    compression: Compression,
    charges: Option<&[u32]>,
) -> (Vec<u8>, Vec<u32>) {
    let records = &records[..records.len().min(usize::from(u16::MAX))];
    let lens = || {
        records
            .iter()
            .map(|(_, r)| r.len() as u32)
            .collect::<Vec<u32>>()
    };
    if compression == Compression::None || records.is_empty() {
        return (block(records), lens());
    }
    let raw: Vec<u8> = records
        .iter()
        .map(|(_, r)| *r)
        .collect::<Vec<&[u8]>>()
        .concat();
    let frame = match compression {
        Compression::Gzip => gzip_block(&raw),
        _ => zstd_block(&raw),
    };
    let Some(frame) = frame else {
        return (block(records), lens());
    };
    let charges = match charges {
        Some(c) if c.len() == records.len() => c.to_vec(),
        // Shares of the frame by raw length, each at least one byte.
        _ => records
            .iter()
            .map(|(_, r)| ((r.len() * frame.len()).div_ceil(raw.len().max(1))).max(1) as u32)
            .collect(),
    };
    let magic = match compression {
        Compression::Gzip => PACKED_GZIP,
        _ => PACKED_MAGIC,
    };
    let size = BLOCK_HEAD + records.len() * PACKED_SLOT + frame.len();
    let mut out = table_head(magic, records.len(), size);
    for ((id, record), charge) in records.iter().zip(&charges) {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&(record.len() as u32).to_be_bytes());
        out.extend_from_slice(&charge.to_be_bytes());
    }
    seal_table(&mut out);
    out.extend_from_slice(&frame);
    (out, charges)
}

/// Whether `block` is packed (its records compressed together).
#[cfg(test)]
pub fn is_packed(block: &[u8]) -> bool {
    packed_with(block).is_some()
}

/// How a packed block's records are compressed; `None` for a plain block.
pub fn packed_with(block: &[u8]) -> Option<Compression> {
    match block.first() {
        Some(&PACKED_MAGIC) => Some(Compression::Zstd),
        Some(&PACKED_GZIP) => Some(Compression::Gzip),
        _ => None,
    }
}

/// One entry of a packed block's table: id, record length, charge.
type PackedEntry = (u64, u32, u32);

/// A packed block's table and its compressed records; `None` when the
/// table is damaged or `block` is not packed.
fn packed_table(block: &[u8]) -> Option<(Vec<PackedEntry>, &[u8])> {
    let mut r = Reader(block);
    let table = checked_table(&mut r, &[PACKED_MAGIC, PACKED_GZIP], PACKED_SLOT)?;
    let entries = table
        .chunks_exact(PACKED_SLOT)
        .map(|e| {
            let word = |at: usize| u32::from_be_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
            let id = u64::from_be_bytes(e[..8].try_into().unwrap_or_default());
            (id, word(8), word(12))
        })
        .collect();
    Some((entries, r.0))
}

/// A packed block's records, decompressed once for every read of them.
#[derive(Debug, PartialEq, Eq)]
pub struct Unpacked {
    entries: Vec<PackedEntry>,
    /// The records one after another, as the table's lengths cut them.
    raw: Vec<u8>,
}

impl Unpacked {
    /// The (id, record) slots, in order (as [`block_slots`] gives a plain
    /// block's).
    pub fn slots(&self) -> Vec<(u64, &[u8])> {
        let mut at = 0;
        self.entries
            .iter()
            .map(|&(id, len, _)| {
                let record = &self.raw[at..at + len as usize];
                at += len as usize;
                (id, record)
            })
            .collect()
    }

    /// The record of `id`, if the block holds it.
    pub fn find(&self, id: u64) -> Option<&[u8]> {
        self.slots()
            .into_iter()
            .find(|&(i, _)| i == id)
            .map(|(_, r)| r)
    }

    /// What the record of `id` is counted as against the disk bound.
    pub fn charge(&self, id: u64) -> Option<u32> {
        self.entries
            .iter()
            .find(|&&(i, _, _)| i == id)
            .map(|&(_, _, charge)| charge)
    }
}

/// A packed block's records; `None` when its table is damaged (or it is not
/// packed). A frame that does not decompress to the table's lengths leaves
/// zeros for the records, so each fails its own checksum and is counted as
/// damaged, by id.
pub fn unpack_block(block: &[u8]) -> Option<Unpacked> {
    let (entries, frame) = packed_table(block)?;
    let raw_len: usize = entries.iter().map(|&(_, len, _)| len as usize).sum();
    let raw = match packed_with(block) {
        Some(Compression::Gzip) => decompress(1, frame, raw_len, &|_| None),
        _ => ZSTD_D.with(|cell| {
            let mut slot = cell.borrow_mut();
            let dctx = slot.get_or_insert_with(zstd::zstd_safe::DCtx::create);
            let mut out = Vec::with_capacity(raw_len);
            dctx.decompress(&mut out, frame).ok()?;
            Some(out)
        }),
    }
    .filter(|raw| raw.len() == raw_len)
    .unwrap_or_else(|| vec![0; raw_len]);
    Some(Unpacked { entries, raw })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            seq: 7,
            sys_ts: -5,
            event_type: b"test".to_vec(),
            correlation_id: Some(b"c-1".to_vec()),
        }
    }

    #[test]
    fn every_codec_round_trips_and_small_bodies_shrink() {
        let body: Vec<u8> = DICT
            .iter()
            .copied()
            .chain(b"payload".iter().copied())
            .collect();
        for codec in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let rec = encode(codec, &header(), &body).unwrap();
            let parsed = parse(&rec).unwrap();
            assert_eq!(parsed.header, header());
            assert_eq!(parsed.body().unwrap(), body);
            if codec != Compression::None {
                assert!(rec.len() < body.len() / 2, "{codec:?}: {}", rec.len());
            }
        }
    }

    /// Bodies shaped like small events: shared structure, a few varying
    /// fields.
    fn event_like(i: usize) -> Vec<u8> {
        let mut body = DICT.clone();
        body.extend_from_slice(format!("user-{} corr-{} n{i}", i % 97, i % 1000).as_bytes());
        body
    }

    #[test]
    fn a_trained_dictionary_round_trips_and_beats_the_built_in_one() {
        let samples: Vec<Vec<u8>> = (0..1024).map(event_like).collect();
        let trained = Trained::train(&samples, 4096).expect("a dictionary");
        assert!(!trained.is_empty() && trained.len() <= 4096);
        let dicts = |id: u32| (id == 9).then(|| std::sync::Arc::new(Trained::new(trained.clone())));
        let (mut with_trained, mut with_built_in) = (0, 0);
        for i in 2000..2100 {
            let body = event_like(i);
            let mut rec = unsealed_trained(9, &trained, -5, b"test", Some(b"c-1"), &body).unwrap();
            seal(&mut rec, 7);
            assert_eq!(parse(&rec).unwrap().body_with(&dicts).unwrap(), body);
            with_trained += rec.len();
            with_built_in += encode(Compression::Zstd, &header(), &body).unwrap().len();
        }
        assert!(
            with_trained < with_built_in,
            "{with_trained} >= {with_built_in}"
        );
    }

    #[test]
    fn frames_that_carry_their_length_and_dictionary_id_still_decode() {
        // What records written before the lean frames hold.
        let body = event_like(3);
        let mut c = zstd::bulk::Compressor::with_dictionary(ZSTD_LEVEL, &DICT).unwrap();
        let frame = c.compress(&body).unwrap();
        let lean_frame = {
            let mut out = Vec::new();
            compress(Compression::Zstd, &body, &mut out).unwrap();
            out
        };
        assert!(lean_frame.len() < frame.len());
        let mut rec = head(2, -5, b"test", None, body.len()).unwrap();
        rec.extend_from_slice(&frame);
        seal(&mut rec, 1);
        assert_eq!(parse(&rec).unwrap().body().unwrap(), body);
    }

    #[test]
    fn blocks_give_back_their_records_and_a_damaged_table_is_refused() {
        let records: Vec<(u64, Vec<u8>)> = (1..=70u64)
            .map(|i| {
                (
                    i * 3,
                    encode(Compression::None, &header(), &[i as u8; 40]).unwrap(),
                )
            })
            .collect();
        let slots: Vec<(u64, &[u8])> = records.iter().map(|(i, r)| (*i, &r[..])).collect();
        let b = block(&slots);
        let slots = block_slots(&b).unwrap();
        assert_eq!(slots.len(), 70);
        for ((id, rec), (sid, srec)) in records.iter().zip(&slots) {
            assert_eq!((id, &rec[..]), (sid, *srec));
        }
        assert_eq!(block_find(&b, 9), Some(Some(&records[2].1[..])));
        assert_eq!(block_find(&b, 10), Some(None));
        let mut damaged = b.clone();
        damaged[BLOCK_HEAD + 3] ^= 1;
        assert_eq!(block_slots(&damaged), None);
        assert_eq!(block_slots(&b[..b.len() - 1]), None);
        assert_eq!(block_slots(&[]), None);
        assert_eq!(block_slots(&block(&[])), Some(vec![]));
    }

    #[test]
    fn packed_blocks_give_back_their_records_and_damage_stays_per_record() {
        let records: Vec<(u64, Vec<u8>)> = (1..=64u64)
            .map(|i| {
                (
                    i,
                    encode(Compression::None, &header(), &[i as u8; 100]).unwrap(),
                )
            })
            .collect();
        let slots: Vec<(u64, &[u8])> = records.iter().map(|(i, r)| (*i, &r[..])).collect();
        let (b, charges) = pack_block(&slots, Compression::Zstd, None);
        assert!(is_packed(&b));
        let raw: usize = records.iter().map(|(_, r)| r.len()).sum();
        assert!(b.len() * 4 < raw, "{} of {raw}", b.len());
        let charged: u32 = charges.iter().sum();
        assert!(charged as usize >= b.len() - BLOCK_HEAD - 64 * PACKED_SLOT);
        assert!((charged as usize) < raw / 4);
        let unpacked = unpack_block(&b).unwrap();
        assert_eq!(unpacked.slots(), slots);
        assert_eq!(unpacked.find(9), Some(&records[8].1[..]));
        assert_eq!(unpacked.find(65), None);
        for (id, charge) in (1..=64).zip(&charges) {
            assert_eq!(unpacked.charge(id), Some(*charge));
        }
        // Rewritten with some records: they keep their charges.
        let kept = &slots[10..20];
        let (again, kept_charges) = pack_block(kept, Compression::Zstd, Some(&charges[10..20]));
        assert_eq!(kept_charges, &charges[10..20]);
        assert_eq!(unpack_block(&again).unwrap().slots(), kept);
        // A damaged frame: the table still names the records, each of
        // which then fails its own checksum.
        let mut damaged = b.clone();
        let last = damaged.len() - 3;
        damaged[last] ^= 0x5a;
        let opened = unpack_block(&damaged).unwrap();
        let slots = opened.slots();
        assert_eq!(slots.len(), 64);
        assert!(slots.iter().all(|(_, r)| parse(r).is_none()));
        // A damaged table: nothing is known.
        let mut damaged = b.clone();
        damaged[BLOCK_HEAD + 5] ^= 1;
        assert_eq!(unpack_block(&damaged), None);
        // Gzip packs too; no compression keeps plain blocks.
        let (gz, _) = pack_block(&slots_of(&records), Compression::Gzip, None);
        assert_eq!(packed_with(&gz), Some(Compression::Gzip));
        assert!(gz.len() * 3 < raw, "{} of {raw}", gz.len());
        assert_eq!(unpack_block(&gz).unwrap().slots(), slots_of(&records));
        let (plain, lens) = pack_block(&slots_of(&records), Compression::None, None);
        assert!(!is_packed(&plain));
        assert_eq!(lens[0] as usize, records[0].1.len());
    }

    fn slots_of(records: &[(u64, Vec<u8>)]) -> Vec<(u64, &[u8])> {
        records.iter().map(|(i, r)| (*i, &r[..])).collect()
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum() {
        let mut rec = encode(Compression::Zstd, &header(), b"abc").unwrap();
        let last = rec.len() - 1;
        rec[last] ^= 0x40;
        assert!(parse(&rec).is_none());
        assert!(parse(&rec[..3]).is_none());
    }
}
