defmodule ElixirScope.Foundation.Integration.StoreMemoryReturnTest do
  # The memory of a closed store goes back to the system (closing a store
  # asks the library's allocator to return its free memory). Measured in a
  # VM of its own: the test VM's resident memory depends on every test
  # that ran before.
  use ExUnit.Case, async: true

  @script ~S"""
  {:ok, _} = Application.ensure_all_started(:elixir_scope_foundation)
  alias ElixirScope.Foundation.Services.EventStore
  alias ElixirScope.Foundation.Types.Event

  rss = fn ->
    Enum.each(Process.list(), &:erlang.garbage_collect/1)
    status = File.read!("/proc/self/status")
    [kb] = Regex.run(~r/VmRSS:\s+(\d+)/, status, capture: :all_but_first)
    String.to_integer(kb) * 1024
  end

  before = rss.()
  ns = {:test, make_ref()}
  {:ok, pid} = EventStore.start_link(namespace: ns, max_events: 0, max_age_seconds: 0)
  text = "sixty-four bytes of payload, more or less, for every event here."

  1..300_000
  |> Stream.chunk_every(1000)
  |> Enum.each(fn ids ->
    events =
      for id <- ids,
          do: Event.new(event_id: id, event_type: :bulk, timestamp: id, data: %{n: id, text: text})

    {:ok, _} = EventStore.store_batch(events, namespace: ns)
  end)

  full = rss.()
  :ok = GenServer.stop(pid)
  deadline = System.monotonic_time(:millisecond) + 10_000

  wait = fn wait ->
    now = rss.()

    if now < before + div(full - before, 2) or System.monotonic_time(:millisecond) > deadline,
      do: now,
      else: Process.sleep(100) && wait.(wait)
  end

  IO.puts("rss #{before} #{full} #{wait.(wait)}")
  """

  @tag timeout: 120_000
  test "a closed store's memory is handed back to the system" do
    dir = Path.join(System.tmp_dir!(), "memory-return-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)
    script = Path.join(dir, "fill.exs")
    File.write!(script, @script)

    paths =
      for p <- :code.get_path(),
          String.contains?(to_string(p), "_build"),
          do: ["-pa", to_string(p)]

    {out, 0} =
      System.cmd(System.find_executable("elixir"), List.flatten(paths) ++ [script],
        stderr_to_stdout: true
      )

    [before, full, after_close] =
      case Regex.run(~r/^rss (\d+) (\d+) (\d+)$/m, out, capture: :all_but_first) do
        nil -> flunk("no rss line in #{out}")
        numbers -> Enum.map(numbers, &String.to_integer/1)
      end

    mb = &div(&1, 1_048_576)
    grown = full - before
    assert grown > 50 * 1_048_576, "the store took only #{mb.(grown)} MB"

    assert after_close < before + div(grown, 2),
           "resident memory: #{mb.(before)} MB before, #{mb.(full)} MB full, " <>
             "#{mb.(after_close)} MB 10 s after the store closed"
  end
end
