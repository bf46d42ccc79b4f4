// The NIF library's mimalloc options, set by their names in mimalloc.h (the
// Rust bindings do not name every option, and the numbers differ between
// mimalloc versions). See src/alloc.rs for why each one is set.
#include <mimalloc.h>

void foundation_nif_mimalloc_options(void) {
  mi_option_set(mi_option_allow_thp, 0);
}
