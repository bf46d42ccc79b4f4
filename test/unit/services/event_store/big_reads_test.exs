defmodule ElixirScope.Foundation.Services.EventStore.BigReadsTest do
  # Long answers are read at low priority, and decoded into room made in
  # the reader's heap before the rest of the answer is read: the reader's
  # garbage collections and its changes of its priority and minimum heap
  # size are traced. Call tracing of
  # `:erlang.process_flag/2` is global: not async.
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.Services.EventStore
  alias ElixirScope.Foundation.Types.Event

  @n 20_000

  setup_all do
    events =
      for i <- 1..@n do
        Event.new(
          event_id: i,
          event_type: :"type_#{rem(i, 2)}",
          timestamp: i,
          correlation_id: "corr-#{rem(i, 2)}",
          data: %{i: i}
        )
      end

    %{events: events}
  end

  setup %{events: events} do
    ns = {:test, make_ref()}

    start_supervised!(
      Supervisor.child_spec({EventStore, [namespace: ns, max_events: 0]}, restart: :temporary)
    )

    opts = [namespace: ns]

    for chunk <- Enum.chunk_every(events, 1000),
        do: {:ok, _} = EventStore.store_batch(chunk, opts)

    %{opts: opts}
  end

  # Runs `read` in a fresh process with `spawn_opts`; returns its answer,
  # how many collections it went through, the minimum heap sizes and the
  # priorities it set (in order), and its minimum heap size before and
  # after the read.
  defp traced_read(read, spawn_opts \\ []) do
    parent = self()

    pid =
      :erlang.spawn_opt(
        fn ->
          receive do
            :go -> :ok
          end

          {:min_heap_size, before} = Process.info(self(), :min_heap_size)
          answer = read.()
          {:min_heap_size, after_read} = Process.info(self(), :min_heap_size)
          send(parent, {:read, answer, before, after_read})
        end,
        spawn_opts
      )

    :erlang.trace_pattern({:erlang, :process_flag, 2}, true, [:global])
    :erlang.trace(pid, true, [:garbage_collection, :call])
    send(pid, :go)

    receive do
      {:read, answer, before, after_read} ->
        delivered = :erlang.trace_delivered(pid)
        receive(do: ({:trace_delivered, ^pid, ^delivered} -> :ok))
        :erlang.trace_pattern({:erlang, :process_flag, 2}, false, [:global])
        {gcs, mins, prios} = traces(pid, 0, [], [])

        %{
          answer: answer,
          gcs: gcs,
          mins: mins,
          prios: prios,
          before: before,
          after: after_read
        }
    end
  end

  defp traces(pid, gcs, mins, prios) do
    receive do
      {:trace, ^pid, kind, _info} when kind in [:gc_minor_start, :gc_major_start] ->
        traces(pid, gcs + 1, mins, prios)

      {:trace, ^pid, :call, {:erlang, :process_flag, [:min_heap_size, words]}} ->
        traces(pid, gcs, [words | mins], prios)

      {:trace, ^pid, :call, {:erlang, :process_flag, [:priority, priority]}} ->
        traces(pid, gcs, mins, [priority | prios])

      {:trace, ^pid, _kind, _info} ->
        traces(pid, gcs, mins, prios)
    after
      0 -> {gcs, Enum.reverse(mins), Enum.reverse(prios)}
    end
  end

  test "a counted answer is read into room made after its first slice", %{
    events: events,
    opts: opts
  } do
    reads = [
      {fn -> EventStore.query(%{event_type: :type_1}, opts) end,
       Enum.filter(events, &(&1.event_type == :type_1))},
      {fn -> EventStore.get_by_correlation("corr-0", opts) end,
       Enum.filter(events, &(&1.correlation_id == "corr-0"))},
      {fn -> EventStore.query(%{order_by: :event_id, offset: 5_000, limit: 8_000}, opts) end,
       Enum.slice(events, 5_000, 8_000)},
      {fn -> EventStore.query(%{}, opts) end, events}
    ]

    for {read, want} <- reads do
      r = traced_read(read)
      assert r.answer == {:ok, want}
      # Room for the whole answer (its events and the final list), set once
      # and then restored.
      words = :erts_debug.flat_size(want) + 2 * length(want)
      assert [room, restored] = r.mins
      assert room >= words and room < 1.5 * words
      assert restored == r.before and r.after == r.before
      assert r.prios == [:low, :normal]
      # One collection may make room for the first slice (the process
      # starts with a tiny heap), one makes room for the rest. Left to the
      # VM, a 10 000-event answer takes a dozen or more.
      assert r.gcs <= 3, "#{r.gcs} collections"
    end
  end

  test "an answer only bounded (a time range) gets room that doubles", %{
    events: events,
    opts: opts
  } do
    q = %{time_range: {1, 18_000}, order_by: :timestamp}
    r = traced_read(fn -> EventStore.query(q, opts) end)
    assert r.answer == {:ok, Enum.take(events, 18_000)}
    {rooms, [restored]} = Enum.split(r.mins, -1)
    assert restored == r.before and r.after == r.before
    # Room for 8 slices first, then twice as much each time half is used,
    # up to the bound (20 000 events: the store's count).
    assert r.prios == [:low, :normal]
    assert length(rooms) >= 4
    assert rooms == Enum.sort(rooms)
    [first | _] = rooms
    per_event = div(first, 8 * 128)
    assert List.last(rooms) <= 20_000 * per_event + 4_096
    assert r.gcs <= 7, "#{r.gcs} collections"
  end

  test "a caller's larger minimum heap size is kept; a heap limit bounds the room", %{
    opts: opts
  } do
    read = fn -> EventStore.query(%{event_type: :type_0}, opts) end

    r = traced_read(read, min_heap_size: 1_000_000)
    assert {:ok, got} = r.answer
    assert length(got) == div(@n, 2)
    # Never lowered: only the restore is a change, to the caller's own.
    assert r.before >= 1_000_000
    assert r.mins == [r.before] and r.after == r.before

    # A caller at high priority keeps it.
    r = traced_read(read, priority: :high)
    assert {:ok, got} = r.answer
    assert length(got) == div(@n, 2)
    assert r.prios == []

    # The limit here only reports; room is made within half of it.
    limit = %{size: 200_000, kill: false, error_logger: false}
    r = traced_read(read, max_heap_size: limit)
    assert {:ok, got} = r.answer
    assert length(got) == div(@n, 2)
    assert [100_000, restored] = r.mins
    assert restored == r.before and r.after == r.before
  end

  test "short answers make no room; one-slice answers keep their priority", %{opts: opts} do
    # 300 events: more than one slice, below the room threshold.
    read = fn -> EventStore.query(%{order_by: :event_id, limit: 300, offset: 300}, opts) end
    r = traced_read(read)
    assert {:ok, got} = r.answer
    assert Enum.map(got, & &1.event_id) == Enum.to_list(301..600)
    assert r.mins == []
    assert r.prios == [:low, :normal]

    # 100 events of a time window: one slice.
    read = fn -> EventStore.query(%{time_range: {19_901, 20_000}}, opts) end
    r = traced_read(read)
    assert {:ok, got} = r.answer
    assert Enum.map(got, & &1.event_id) == Enum.to_list(19_901..20_000)
    assert r.mins == [] and r.prios == []
  end
end
