defmodule ElixirScope.Foundation.Services.EventStore.ReadGate do
  @moduledoc false
  # How many processes read long answers (more than one slice) at once, for
  # the whole VM: one scheduler fewer than the VM has, by default, so a
  # burst of long reads never keeps every scheduler busy.
  #
  # A long read is cut into short slices, so the schedulers themselves stay
  # responsive. What slicing cannot help is the host: on the 2-core virtual
  # machine of the benchmarks, while both cores were busy the hypervisor
  # stopped each of them for up to 10 ms at a time (a C program of two
  # spinning threads saw the same), and a process woken then waited that
  # long. With one core left to the rest of the VM, no such stalls were
  # seen. Readers past the limit wait their turn, asleep; short reads never
  # pass through here.
  #
  # Configured by `config :elixir_scope_foundation, :long_reads,
  # concurrency: n` (a positive integer or `:unlimited`), read when the
  # gate starts. A reader whose gate is missing or dies reads ungated.

  use GenServer

  require Logger

  @typedoc "A granted turn, given back by `release/1`."
  @type turn :: reference() | :ungated

  @doc false
  def start_link(_opts), do: GenServer.start_link(__MODULE__, [], name: __MODULE__)

  @doc "The configured or default number of concurrent long readers."
  @spec limit() :: pos_integer() | :unlimited
  def limit do
    case configured() do
      {:ok, limit} -> limit
      {:invalid, _value} -> default()
    end
  end

  defp configured do
    case Application.get_env(:elixir_scope_foundation, :long_reads, [])[:concurrency] do
      nil -> {:ok, default()}
      :unlimited -> {:ok, :unlimited}
      n when is_integer(n) and n > 0 -> {:ok, n}
      other -> {:invalid, other}
    end
  end

  defp default, do: max(System.schedulers_online() - 1, 1)

  @doc """
  Runs `fun` once a turn is free (at once without a gate, or when this
  process holds a turn already or runs inside `unqueued/1`).
  """
  @spec run((() -> result)) :: result when result: term()
  def run(fun) when is_function(fun, 0) do
    case Process.get(__MODULE__) do
      nil ->
        turn = acquire()
        Process.put(__MODULE__, turn)

        try do
          fun.()
        after
          Process.delete(__MODULE__)
          release(turn)
        end

      _held_or_unqueued ->
        fun.()
    end
  end

  @doc """
  Runs `fun` with no turn asked for by `run/1` inside it: for readers at
  `:high` or `:max` priority, which a queue of normal readers must not
  hold back.
  """
  @spec unqueued((() -> result)) :: result when result: term()
  def unqueued(fun) when is_function(fun, 0) do
    case Process.get(__MODULE__) do
      nil ->
        Process.put(__MODULE__, :unqueued)

        try do
          fun.()
        after
          Process.delete(__MODULE__)
        end

      _held_or_unqueued ->
        fun.()
    end
  end

  defp acquire do
    case GenServer.whereis(__MODULE__) do
      nil ->
        :ungated

      gate ->
        try do
          GenServer.call(gate, :acquire, :infinity)
        catch
          :exit, _ -> :ungated
        end
    end
  end

  defp release(:ungated), do: :ok
  defp release(turn), do: GenServer.cast(__MODULE__, {:release, turn})

  @impl true
  def init([]) do
    limit =
      case configured() do
        {:ok, limit} ->
          limit

        {:invalid, value} ->
          Logger.warning(
            "ignoring :long_reads concurrency #{inspect(value)} (expected a positive integer or :unlimited); using #{default()}"
          )

          default()
      end

    {:ok, %{limit: limit, holders: %{}, waiting: :queue.new()}}
  end

  @impl true
  def handle_call(:acquire, _from, %{limit: :unlimited} = state), do: {:reply, :ungated, state}

  # A turn is the monitor of its holder: a holder that dies frees it.
  def handle_call(:acquire, {pid, _} = from, state) do
    if map_size(state.holders) < state.limit do
      turn = Process.monitor(pid)
      {:reply, turn, put_in(state.holders[turn], pid)}
    else
      {:noreply, %{state | waiting: :queue.in(from, state.waiting)}}
    end
  end

  @impl true
  def handle_cast({:release, turn}, state), do: {:noreply, free(turn, state)}

  @impl true
  def handle_info({:DOWN, turn, :process, _pid, _reason}, state),
    do: {:noreply, free(turn, state)}

  def handle_info(_message, state), do: {:noreply, state}

  defp free(turn, state) do
    case Map.pop(state.holders, turn) do
      {nil, _} ->
        state

      {_pid, holders} ->
        Process.demonitor(turn, [:flush])
        next(%{state | holders: holders})
    end
  end

  # Hands the freed turn to the first waiter still alive.
  defp next(state) do
    case :queue.out(state.waiting) do
      {{:value, {pid, _} = from}, waiting} ->
        if Process.alive?(pid) do
          turn = Process.monitor(pid)
          GenServer.reply(from, turn)
          %{state | holders: Map.put(state.holders, turn, pid), waiting: waiting}
        else
          next(%{state | waiting: waiting})
        end

      {:empty, _} ->
        state
    end
  end
end
