defmodule ElixirScope.Foundation.Services.ConfigServer.Publisher do
  @moduledoc false
  # Publication of ConfigServer's config in `:persistent_term` (under
  # `{ConfigServer, namespace}`, read by callers) and the group commit of
  # updates. Runs inside the ConfigServer process, on its state map, whose
  # `pending`, `tokens`, `refilled_at` and `flush_timer` fields it owns
  # (see `fields/0`); it reads `namespace`, `config` and `subscribers`.
  #
  # Why group commit: every republish leaves the old config in a literal
  # area that the VM frees only after scanning every process; under a
  # stream of updates those areas piled up faster than they were freed
  # (VM memory grew without bound; the overload suite in test/reliability
  # checks it stays bounded).
  # So publications are rate limited by a token bucket (@publish_burst at
  # once, then one per @publish_gap_ms): an update arriving when no token is
  # left is applied to the state at once, but its caller's `:ok` (and the
  # subscribers' notification) waits for the next publication, which
  # carries every update since.

  alias ElixirScope.Foundation.Services.ConfigServer

  @publish_gap_ms 5
  @publish_burst 50

  @doc false
  def published(namespace), do: :persistent_term.get({ConfigServer, namespace}, nil)

  @doc false
  def publish(namespace, config), do: :persistent_term.put({ConfigServer, namespace}, config)

  @doc false
  def erase(namespace), do: :persistent_term.erase({ConfigServer, namespace})

  @doc false
  def notify(subscribers, message),
    do: Enum.each(subscribers, &send(&1, {:config_notification, message}))

  @doc "The group-commit fields of a fresh state."
  def fields, do: %{pending: [], tokens: @publish_burst, refilled_at: now_ms(), flush_timer: nil}

  @doc """
  Queues the reply to an update already applied to `state.config`: published
  (and replied to) now if a token is left, else by the next `tick/1`.
  """
  def commit(%{} = state, from, path, value) do
    state = refill(%{state | pending: [{from, path, value} | state.pending]})

    cond do
      state.tokens >= 1 -> state |> take_token() |> flush()
      state.flush_timer -> state
      true -> %{state | flush_timer: Process.send_after(self(), :flush_config, @publish_gap_ms)}
    end
  end

  @doc "Handles the `:flush_config` timer message."
  def tick(state), do: %{state | flush_timer: nil} |> refill() |> take_token() |> flush()

  @doc """
  Publishes the config if it changed, then notifies the subscribers of and
  replies `:ok` to every pending update, in arrival order.
  """
  def flush(%{pending: []} = state), do: state

  def flush(%{} = state) do
    _ = if state.flush_timer, do: Process.cancel_timer(state.flush_timer)
    # Skip the republish (a global literal-area scan) when nothing changed.
    if published(state.namespace) != state.config, do: publish(state.namespace, state.config)

    for {from, path, value} <- Enum.reverse(state.pending) do
      notify(state.subscribers, {:config_updated, path, value})
      GenServer.reply(from, :ok)
    end

    %{state | pending: [], flush_timer: nil}
  end

  defp refill(state) do
    now = now_ms()
    tokens = min(@publish_burst, state.tokens + (now - state.refilled_at) / @publish_gap_ms)
    %{state | tokens: tokens, refilled_at: now}
  end

  defp take_token(state), do: %{state | tokens: state.tokens - 1}

  defp now_ms, do: System.monotonic_time(:millisecond)
end
