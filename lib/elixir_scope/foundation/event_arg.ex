defmodule ElixirScope.Foundation.EventArg do
  @moduledoc false
  # Argument checks for the functions that take events: a caller passing
  # something else gets an ArgumentError saying what was expected and what
  # arrived, instead of a FunctionClauseError from an internal module.

  alias ElixirScope.Foundation.Types.Event

  @max_shown 200

  @doc false
  @spec check!(term()) :: Event.t()
  def check!(%Event{} = event), do: event

  def check!(other) do
    raise ArgumentError,
          "expected an %ElixirScope.Foundation.Types.Event{} (build one with " <>
            "ElixirScope.Foundation.Events.new_event/3), got: #{shown(other)}"
  end

  @doc false
  @spec check_list!(term()) :: [Event.t()]
  def check_list!(events) when is_list(events) do
    if all_events?(events), do: events, else: explain_list!(events)
  end

  def check_list!(other), do: raise(ArgumentError, not_a_list(other))

  defp all_events?([%Event{} | rest]), do: all_events?(rest)
  defp all_events?(rest), do: rest == []

  defp explain_list!(events) do
    events
    |> Enum.with_index()
    |> Enum.each(fn
      {%Event{}, _index} ->
        :ok

      {other, index} ->
        raise ArgumentError,
              "expected a list of %ElixirScope.Foundation.Types.Event{}, got at index " <>
                "#{index}: #{shown(other)}"
    end)

    events
  rescue
    # An improper list: Enum cannot walk it.
    FunctionClauseError -> raise ArgumentError, not_a_list(events)
  end

  defp not_a_list(other),
    do: "expected a list of %ElixirScope.Foundation.Types.Event{}, got: #{shown(other)}"

  defp shown(term) do
    text = inspect(term, limit: 8, printable_limit: @max_shown)

    if String.length(text) > @max_shown,
      do: String.slice(text, 0, @max_shown) <> "...",
      else: text
  end
end
