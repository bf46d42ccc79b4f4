defmodule ElixirScope.Foundation.TermSize do
  @moduledoc false
  # `:erlang.external_size/1` that never holds a normal scheduler long.
  #
  # The BIF does not yield: ~1 MB of data made of ~36k small tuples keeps a
  # scheduler 1.3-2 ms. Scalars and terms of at most a few thousand terms
  # (`Native.term_size_small/1`, a bounded walk) still use the BIF; bigger
  # ones (or ones holding a fun) are sized by `Native.term_size_exact/1` on
  # a dirty CPU scheduler, which returns the same number.

  alias ElixirScope.Foundation.Native

  @doc "Exactly `:erlang.external_size(term)`; raises like it (`ArgumentError`)."
  @spec external_size(term()) :: non_neg_integer()
  def external_size(term)
      when is_bitstring(term) or is_atom(term) or is_number(term) or
             is_pid(term) or is_reference(term) or is_port(term),
      do: :erlang.external_size(term)

  def external_size(term) do
    if Native.term_size_small(term),
      do: :erlang.external_size(term),
      else: Native.term_size_exact(term)
  end
end
