defmodule ElixirScope.Foundation.TestSupport.Eventually do
  @moduledoc false
  # The one polling helper of the test suite, for conditions that become true
  # asynchronously (an event stored by a worker thread, a periodic job, a
  # restarted process, a node joining).
  #
  #   * eventually(fun, timeout_ms) calls `fun` until it returns a truthy
  #     value or `timeout_ms` has passed, and returns the last value: tests
  #     `assert` on it or use the value.
  #   * wait_until(fun, timeout_ms) is the same but fails the test when the
  #     time runs out, and returns the truthy value.
  #
  # Polls every timeout/100 ms, at least 10 ms and at most 50 ms apart, so
  # long waits on heavy checks do not load the machine.

  @default_timeout 2_000

  @doc false
  @spec eventually((() -> value), non_neg_integer()) :: value when value: term()
  def eventually(fun, timeout_ms \\ @default_timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout_ms
    poll(fun, deadline, timeout_ms |> div(100) |> max(10) |> min(50))
  end

  @doc false
  @spec wait_until((() -> value), non_neg_integer()) :: value when value: term()
  def wait_until(fun, timeout_ms \\ @default_timeout) do
    eventually(fun, timeout_ms) ||
      ExUnit.Assertions.flunk("condition not reached within #{timeout_ms} ms")
  end

  defp poll(fun, deadline, interval) do
    value = fun.()

    cond do
      value -> value
      System.monotonic_time(:millisecond) >= deadline -> value
      true -> Process.sleep(interval) && poll(fun, deadline, interval)
    end
  end
end
