defmodule ElixirScope.Foundation.TermSize do
  @moduledoc false
  # `:erlang.external_size/1` that never holds a normal scheduler long.
  #
  # The BIF does not yield, and on about 1 MB of small tuples it holds the
  # scheduler past the ~1 ms budget (docs/benchmarks.md). Scalars and terms
  # of at most a few thousand terms (`Native.term_size_small/1`, a bounded
  # walk) still use the BIF; bigger ones (or ones holding a fun) are sized
  # by `Native.term_size_exact/1` on a dirty CPU scheduler, which returns
  # the same number.

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
