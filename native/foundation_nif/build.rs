//! Compiles `c/mimalloc_options.c` against the header of the mimalloc that
//! `libmimalloc-sys` builds (it exports its include directory).

fn main() {
    let include = std::env::var("DEP_MIMALLOC_INCLUDE_DIR")
        .expect("libmimalloc-sys exports DEP_MIMALLOC_INCLUDE_DIR");
    println!("cargo:rerun-if-changed=c/mimalloc_options.c");
    cc::Build::new()
        .file("c/mimalloc_options.c")
        .include(include)
        .warnings(true)
        .compile("foundation_nif_mimalloc_options");
}
