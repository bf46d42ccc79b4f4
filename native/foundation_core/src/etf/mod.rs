//! The BEAM's external term format (ETF), for the dirty NIFs that stand in
//! for BIFs which would hold a normal scheduler on big terms: the
//! compressed framing of `term_to_binary(term, [:compressed])` (`compress`)
//! `external_size/1` from an encoding (`size`), and the inflating of a
//! compressed binary before `enif_binary_to_term` (`decompress`).

mod compress;
mod decompress;
mod size;

pub use compress::{compress, COMPRESSED_TAG, DEFAULT_LEVEL, HEADER_BYTES, VERSION_MAGIC};
pub use decompress::decompress;
pub use size::external_size;
