defmodule ElixirScope.Foundation.TestSupport.Eventually do
  @moduledoc false
  # Polls a condition that becomes true asynchronously (an event stored by a
  # worker thread, a periodic job): `fun` is tried up to `tries + 1` times,
  # 20 ms apart. Returns whether it became true; tests assert on that.

  @doc false
  @spec eventually((() -> as_boolean(term())), non_neg_integer()) :: boolean()
  def eventually(fun, tries \\ 100) do
    cond do
      fun.() -> true
      tries == 0 -> false
      true -> Process.sleep(20) && eventually(fun, tries - 1)
    end
  end
end
