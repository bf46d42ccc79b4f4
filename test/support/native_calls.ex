defmodule ElixirScope.Foundation.Test.NativeCalls do
  @moduledoc false
  # Test-only probe of size-based scheduling: runs `fun` in a fresh process
  # with call tracing on `ElixirScope.Foundation.Native` and returns
  # `{result, names}`, the names of the NIFs it called, in order. Call
  # tracing is global per function: use it from `async: false` tests only.

  alias ElixirScope.Foundation.Native

  @doc "`{fun.(), [nif_name]}`; `only` keeps names starting with that prefix."
  def traced(fun, only \\ "") do
    parent = self()
    tag = make_ref()

    pid =
      spawn(fn ->
        receive do
          :go -> send(parent, {tag, fun.()})
        end
      end)

    :erlang.trace_pattern({Native, :_, :_}, true, [:global])
    :erlang.trace(pid, true, [:call])
    send(pid, :go)
    result = receive(do: ({^tag, result} -> result))
    delivered = :erlang.trace_delivered(pid)
    receive(do: ({:trace_delivered, ^pid, ^delivered} -> :ok))
    :erlang.trace_pattern({Native, :_, :_}, false, [:global])
    {result, collect(pid, only, [])}
  end

  defp collect(pid, only, acc) do
    receive do
      {:trace, ^pid, :call, {Native, name, _args}} -> collect(pid, only, [name | acc])
    after
      0 -> acc |> Enum.reverse() |> Enum.filter(&String.starts_with?(Atom.to_string(&1), only))
    end
  end
end
