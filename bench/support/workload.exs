defmodule Bench.Workload do
  @moduledoc """
  The event workload the drop-in and subscriptions benches share: events
  with 64-byte payloads, 10 types and 1 000 correlation ids (so 50 events
  per id in a store of 50 000), and the `SHORT=1` scale-down of the CI form.
  """

  alias ElixirScope.Foundation.Types.Event

  @groups 1_000
  @types List.to_tuple(for i <- 0..9, do: :"type_#{i}")
  @payload :binary.copy(<<7>>, 64)

  @doc "True for the short (CI) form of a bench."
  def short?, do: System.get_env("SHORT") in ["1", "true"]

  @doc "`n`, or a fifth of it in the short form."
  def scale(n), do: if(short?(), do: max(div(n, 5), 1), else: n)

  @doc "The type of event `i`."
  def type(i), do: elem(@types, rem(i, 10))

  @doc "Event `i` of the workload."
  def event(i) do
    %Event{
      event_id: i,
      event_type: type(i),
      timestamp: i,
      wall_time: ~U[2026-01-01 00:00:00Z],
      node: node(),
      pid: self(),
      correlation_id: "corr-#{rem(i, @groups)}",
      parent_id: nil,
      data: %{payload: @payload}
    }
  end
end
