defmodule ElixirScope.Foundation.Services.EventStore.ReadGateTest do
  # Long answers (more than one slice) are read by a bounded number of
  # processes at once, VM-wide. The gate is the application's: these tests
  # restart it with other limits, so they do not run alongside others.
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.Services.EventStore
  alias ElixirScope.Foundation.Services.EventStore.ReadGate
  alias ElixirScope.Foundation.Types.Event

  @n 6_000

  setup do
    on_exit(fn -> restart_gate(nil) end)
    ns = {:test, make_ref()}

    start_supervised!(
      Supervisor.child_spec({EventStore, [namespace: ns, max_events: 0]}, restart: :temporary)
    )

    opts = [namespace: ns]

    for chunk <- Enum.chunk_every(1..@n, 1000) do
      events = for i <- chunk, do: Event.new(event_id: i, event_type: :t, timestamp: i, data: i)
      {:ok, _} = EventStore.store_batch(events, opts)
    end

    %{opts: opts}
  end

  # The gate reads its limit when it starts (nil: the default).
  defp restart_gate(concurrency) do
    case concurrency do
      nil -> Application.delete_env(:elixir_scope_foundation, :long_reads)
      n -> Application.put_env(:elixir_scope_foundation, :long_reads, concurrency: n)
    end

    sup = ElixirScope.Foundation.Supervisor
    :ok = Supervisor.terminate_child(sup, ReadGate)
    {:ok, _} = Supervisor.restart_child(sup, ReadGate)
  end

  # A process that takes a turn and keeps it.
  defp hold_turn do
    parent = self()

    holder =
      spawn(fn ->
        ReadGate.run(fn ->
          send(parent, :holding)
          Process.sleep(:infinity)
        end)
      end)

    assert_receive :holding
    holder
  end

  defp long_query(opts), do: EventStore.query(%{event_type: :t, order_by: :event_id}, opts)

  test "the limit: configured, unlimited, or one scheduler fewer than the VM has" do
    Application.put_env(:elixir_scope_foundation, :long_reads, concurrency: 3)
    assert ReadGate.limit() == 3
    Application.put_env(:elixir_scope_foundation, :long_reads, concurrency: :unlimited)
    assert ReadGate.limit() == :unlimited
    Application.put_env(:elixir_scope_foundation, :long_reads, concurrency: 0)
    assert ReadGate.limit() == max(System.schedulers_online() - 1, 1)
    Application.delete_env(:elixir_scope_foundation, :long_reads)
    assert ReadGate.limit() == max(System.schedulers_online() - 1, 1)
  end

  test "a concurrency that is not a positive integer or :unlimited is logged and ignored" do
    log = ExUnit.CaptureLog.capture_log(fn -> restart_gate(0) end)
    assert log =~ ":long_reads concurrency 0"
    assert %{limit: limit} = :sys.get_state(ReadGate)
    assert limit == max(System.schedulers_online() - 1, 1)
  end

  test "long reads from several processes take turns, and each gets its whole answer", %{
    opts: opts
  } do
    restart_gate(1)
    parent = self()
    gate = Process.whereis(ReadGate)

    readers =
      for _ <- 1..4 do
        spawn_link(fn ->
          for _ <- 1..5, do: send(parent, {:answer, long_query(opts)})
        end)
      end

    # Sampled while they read: never two holders, and someone waited.
    samples = sample(gate, readers, [])
    assert Enum.all?(samples, fn {holders, _} -> holders <= 1 end)
    assert Enum.any?(samples, fn {_, waiting} -> waiting > 0 end)

    expected = Enum.to_list(1..@n)

    for _ <- 1..20 do
      assert_receive {:answer, {:ok, events}}, 10_000
      assert Enum.map(events, & &1.event_id) == expected
    end

    assert %{holders: holders} = :sys.get_state(gate)
    assert holders == %{}
  end

  test "a short read does not wait for a turn", %{opts: opts} do
    restart_gate(1)
    holder = hold_turn()
    assert {:ok, [_ | _] = some} = EventStore.query(%{event_type: :t, limit: 10}, opts)
    assert length(some) == 10
    Process.exit(holder, :kill)
  end

  test "a holder that dies frees its turn" do
    restart_gate(1)
    holder = hold_turn()
    waiter = Task.async(fn -> ReadGate.run(fn -> :read end) end)
    refute Task.yield(waiter, 100)
    Process.exit(holder, :kill)
    assert Task.await(waiter) == :read
  end

  test "a reader at high priority does not queue behind normal ones", %{opts: opts} do
    restart_gate(1)
    holder = hold_turn()

    urgent =
      Task.async(fn ->
        Process.flag(:priority, :high)
        long_query(opts)
      end)

    assert {:ok, events} = Task.await(urgent, 5_000)
    assert length(events) == @n
    Process.exit(holder, :kill)
  end

  test "a turn held by this process is not asked for again" do
    restart_gate(1)
    assert ReadGate.run(fn -> ReadGate.run(fn -> :nested end) end) == :nested
  end

  test "without the gate, long reads go on ungated", %{opts: opts} do
    :ok = Supervisor.terminate_child(ElixirScope.Foundation.Supervisor, ReadGate)
    assert {:ok, events} = long_query(opts)
    assert length(events) == @n
  end

  defp sample(gate, readers, acc) do
    if Enum.any?(readers, &Process.alive?/1) do
      %{holders: holders, waiting: waiting} = :sys.get_state(gate)
      sample(gate, readers, [{map_size(holders), :queue.len(waiting)} | acc])
    else
      acc
    end
  end
end
