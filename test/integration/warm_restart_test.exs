defmodule ElixirScope.Foundation.Integration.WarmRestartTest do
  # Warm storage across real OS processes: a child VM runs the application
  # with `storage.warm` enabled, is killed with `kill -9` (or stopped), and
  # another child VM opens the same directory.
  use ExUnit.Case, async: true

  @moduletag :warm
  @moduletag timeout: 120_000

  @child ~S"""
  [dir, mode | args] = System.argv()
  Logger.configure(level: :error)
  Application.put_env(:elixir_scope, :storage,
    warm: [enable: true, path: dir, max_size_mb: 100, compression: :zstd])

  alias ElixirScope.Foundation.Services.EventStore
  alias ElixirScope.Foundation.Types.{Error, Event}

  t0 = System.monotonic_time(:millisecond)
  {:ok, _} = Application.ensure_all_started(:elixir_scope_foundation)
  IO.puts("started #{System.monotonic_time(:millisecond) - t0}")
  IO.puts("pid #{System.pid()}")

  # Every read the contract offers; a time range given in system time is
  # converted to this VM's monotonic clock.
  reads = fn sys_lo, sys_hi ->
    off = System.time_offset(:millisecond)
    plain = fn
      {:error, %Error{code: code}} -> {:error, code}
      other -> other
    end
    queries = [
      %{}, %{order_by: :timestamp}, %{order_by: :timestamp_desc, limit: 9},
      %{order_by: :event_id, offset: 5, limit: 20}, %{event_type: :odd},
      %{event_type: :even, time_range: {sys_lo - off, sys_hi - off}, order_by: :timestamp}
    ]
    {:ok, stats} = EventStore.stats()
    %{
      queries: Enum.map(queries, &EventStore.query/1),
      gets: Enum.map(1..210, &plain.(EventStore.get(&1))),
      cids: Enum.map(["c0", "c1", "c2"], &EventStore.get_by_correlation/1),
      stats: Map.take(stats, [:events_stored, :events_pruned, :current_event_count, :warm_events, :warm_enabled])
    }
  end

  digest = fn r -> Base.encode16(:crypto.hash(:sha256, :erlang.term_to_binary(r))) end

  case mode do
    "write" ->
      for w <- 1..4 do
        spawn(fn ->
          Enum.each(Stream.iterate(1, &(&1 + 1)), fn i ->
            id = w * 1_000_000_000 + i
            event = Event.new(event_id: id, event_type: :load, timestamp: i, data: %{w: w, i: i})
            {:ok, ^id} = EventStore.store(event)
            IO.puts("ack #{id}")
          end)
        end)
      end
      Process.sleep(:infinity)

    "check" ->
      [ack_file] = args
      ids = ack_file |> File.read!() |> String.split() |> Enum.map(&String.to_integer/1)
      missing = Enum.count(ids, &(not match?({:ok, _}, EventStore.get(&1))))
      {:ok, stats} = EventStore.stats()
      IO.puts("missing #{missing}")
      IO.puts("count #{stats.current_event_count}")

    "sample" ->
      base = System.monotonic_time(:millisecond)
      for id <- 1..200 do
        type = if rem(id, 2) == 0, do: :even, else: :odd
        event = Event.new(event_id: id, event_type: type, timestamp: base + rem(id * 37, 200),
          correlation_id: "c#{rem(id, 3)}", data: %{id: id, pid: self(), ref: make_ref()})
        {:ok, ^id} = EventStore.store(event)
      end
      {:ok, _} = EventStore.store_batch(for id <- [7, 8], do: Event.new(event_id: id,
        event_type: :odd, timestamp: base + 500, data: %{again: id}))
      {:ok, _} = EventStore.prune_before(base + 10)
      sys_lo = base + System.time_offset(:millisecond) + 50
      IO.puts("range #{sys_lo} #{sys_lo + 100}")
      IO.puts("digest #{digest.(reads.(sys_lo, sys_lo + 100))}")
      if args == ["stop"], do: Application.stop(:elixir_scope_foundation)
      IO.puts("done")
      Process.sleep(:infinity)

    "digest" ->
      [lo, hi] = Enum.map(args, &String.to_integer/1)
      IO.puts("digest #{digest.(reads.(lo, hi))}")

    "hold" ->
      IO.puts("ready")
      Process.sleep(:infinity)

    "thirty" ->
      # Each event in an engine batch of its own: reads (here stats/0) wait
      # until the tier has written its journal to the engine.
      for id <- 1..30 do
        {:ok, ^id} = EventStore.store(Event.new(event_id: id, event_type: :t, timestamp: id))
        {:ok, %{warm_events: ^id}} = EventStore.stats()
      end
      IO.puts("done")
      Process.sleep(:infinity)

    "unapplied" ->
      # The tier's apply thread is held: acknowledged events are only in
      # its journal when the VM is killed.
      %{warm: warm} = ElixirScope.Foundation.Services.EventStore.Support.entry([])
      :ok = ElixirScope.Foundation.Native.warm_hold_apply(warm, true)
      for id <- 1..40 do
        {:ok, ^id} = EventStore.store(Event.new(event_id: id, event_type: :u, timestamp: id,
          correlation_id: "u", data: %{id: id}))
      end
      {:ok, _} = EventStore.store(Event.new(event_id: 5, event_type: :u, timestamp: 5,
        correlation_id: "u", data: %{again: 5}))
      {:ok, [41, 42, 43]} = EventStore.store_batch(for id <- 41..43, do: Event.new(event_id: id,
        event_type: :u, timestamp: id, correlation_id: "u", data: %{id: id}))
      IO.puts("done")
      Process.sleep(:infinity)

    "replayed" ->
      {:ok, stats} = EventStore.stats()
      IO.puts("count #{stats.warm_events} corrupt #{stats.warm_corrupt_records}")
      {:ok, events} = EventStore.get_by_correlation("u")
      IO.puts("ids #{Enum.map_join(events, ",", & &1.event_id)}")
      {:ok, five} = EventStore.get(5)
      IO.puts("five #{inspect(five.data)}")

    "lost" ->
      {:ok, stats} = EventStore.stats()
      IO.puts("corrupt #{stats.warm_corrupt_records}")
      found = Enum.filter(1..30, &match?({:ok, _}, EventStore.get(&1)))
      IO.puts("found #{Enum.join(found, ",")}")

    "novel" ->
      [name] = args
      type = String.to_atom(name)
      for id <- 1..20 do
        {:ok, ^id} = EventStore.store(Event.new(event_id: id, event_type: type, timestamp: id))
      end
      IO.puts("done")
      Process.sleep(:infinity)

    "catch_up" ->
      {:ok, ref} = ElixirScope.Foundation.Events.subscribe(%{}, from: :start)
      got =
        Enum.flat_map(1..20, fn _ ->
          receive do
            {:foundation_events, ^ref, events} -> events
          after
            2_000 -> []
          end
        end)
      IO.puts("got #{length(got)}")
      IO.puts("types #{got |> Enum.map(&Atom.to_string(&1.event_type)) |> Enum.uniq() |> Enum.join(",")}")

    "second" ->
      {:ok, stats} = EventStore.stats()
      IO.puts("warm_enabled #{stats.warm_enabled} count #{stats.current_event_count}")
      {:ok, _} = EventStore.store(Event.new(event_id: 99, event_type: :second, timestamp: 1))
      IO.puts("stored")
  end
  """

  setup_all do
    script = Path.join(System.tmp_dir!(), "warm_child_#{System.unique_integer([:positive])}.exs")
    File.write!(script, @child)
    on_exit(fn -> File.rm(script) end)
    %{script: script}
  end

  setup do
    dir = Path.join(System.tmp_dir!(), "warm-vm-#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm_rf!(dir) end)
    %{dir: dir}
  end

  defp child(script, dir, args) do
    paths =
      for p <- :code.get_path(),
          String.contains?(to_string(p), "_build"),
          do: ["-pa", to_string(p)]

    port =
      Port.open({:spawn_executable, System.find_executable("elixir")}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        {:line, 4096},
        args: List.flatten(paths) ++ [script, dir | args]
      ])

    # A failing test must not leave a writer VM running.
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    on_exit(fn -> System.cmd("kill", ["-9", to_string(os_pid)], stderr_to_stdout: true) end)
    port
  end

  # Lines until `stop?.(line, acc)` says so (or the process exits).
  defp collect(port, acc, stop?, timeout \\ 60_000) do
    receive do
      {^port, {:data, {:eol, line}}} ->
        acc = [line | acc]
        if stop?.(line, acc), do: Enum.reverse(acc), else: collect(port, acc, stop?, timeout)

      {^port, {:data, {:noeol, _}}} ->
        collect(port, acc, stop?, timeout)

      {^port, {:exit_status, _}} ->
        Enum.reverse(acc)
    after
      timeout -> flunk("child VM silent for #{timeout} ms; got #{inspect(Enum.take(acc, 5))}")
    end
  end

  defp run(script, dir, args) do
    port = child(script, dir, args)
    collect(port, [], fn _, _ -> false end)
  end

  defp field(lines, key) do
    Enum.find_value(lines, fn line ->
      case String.split(line, " ", parts: 2) do
        [^key, value] -> value
        _ -> nil
      end
    end) || flunk("no #{key} line in #{inspect(lines)}")
  end

  defp kill(lines) do
    {_, 0} = System.cmd("kill", ["-9", field(lines, "pid")])
  end

  test "kill -9 during concurrent writes loses no acknowledged event", %{script: s, dir: dir} do
    port = child(s, dir, ["write"])
    acks = fn lines -> Enum.count(lines, &String.starts_with?(&1, "ack ")) end
    lines = collect(port, [], fn _line, acc -> acks.(acc) >= 3_000 end)
    kill(lines)
    # Everything the child printed before it died is acknowledged.
    lines = lines ++ collect(port, [], fn _, _ -> false end)
    ids = for "ack " <> id <- lines, do: id
    assert length(ids) >= 3_000

    ack_file = Path.join(dir, "acks")
    File.write!(ack_file, Enum.join(ids, "\n"))
    out = run(s, dir, ["check", ack_file])
    assert field(out, "missing") == "0"
    assert String.to_integer(field(out, "count")) >= length(ids)
  end

  test "a restarted VM answers every read as before, after kill -9 or a clean stop",
       %{script: s, dir: dir} do
    for how <- ["kill", "stop"] do
      File.rm_rf!(dir)
      port = child(s, dir, ["sample", how])
      lines = collect(port, [], fn line, _ -> line == "done" end)
      before = field(lines, "digest")
      [lo, hi] = String.split(field(lines, "range"))
      kill(lines)
      collect(port, [], fn _, _ -> false end)

      after_restart = run(s, dir, ["digest", lo, hi])
      assert field(after_restart, "digest") == before, "after #{how}"
      # And again: reading changes nothing.
      assert field(run(s, dir, ["digest", lo, hi]), "digest") == before
    end
  end

  test "acknowledged events cut off by damage in the middle of the journal are counted",
       %{script: s, dir: dir} do
    for journal <- [:kept, :lost] do
      File.rm_rf!(dir)
      port = child(s, dir, ["thirty"])
      lines = collect(port, [], fn line, _ -> line == "done" end)
      kill(lines)
      collect(port, [], fn _, _ -> false end)

      # Break the engine's journal marker of event 20's block (one per
      # write here, keyed by its first arrival sequence plus one: 20): the
      # engine's replay stops there and cuts its journal, so events 20..30
      # are gone from it.
      pattern = <<6, "blocks", 8::16, 20::64>>

      hits =
        for file <- Path.wildcard(Path.join(dir, "data/**/*")), File.regular?(file) do
          bin = File.read!(file)

          case :binary.match(bin, pattern) do
            {pos, _} ->
              <<head::binary-size(pos - 2), _tag, rest::binary>> = bin
              File.write!(file, <<head::binary, 0x7F, rest::binary>>)

            :nomatch ->
              nil
          end
        end

      assert :ok in hits

      if journal == :lost do
        # Without the tier's own journal the loss is counted...
        Enum.each(Path.wildcard(Path.join(dir, "journal/*")), &File.rm!/1)
        out = run(s, dir, ["lost"])
        assert field(out, "found") == Enum.join(1..19, ",")
        assert field(out, "corrupt") == "11"
        assert Enum.any?(out, &(&1 =~ "11 acknowledged event(s)"))
      else
        # ...with it (the segment the writes went to is still there) the
        # events are written to the engine again.
        out = run(s, dir, ["lost"])
        assert field(out, "found") == Enum.join(1..30, ",")
        assert field(out, "corrupt") == "0"
      end
    end
  end

  test "kill -9 with writes only in the tier's journal: a restart has them all",
       %{script: s, dir: dir} do
    port = child(s, dir, ["unapplied"])
    lines = collect(port, [], fn line, _ -> line == "done" end)
    kill(lines)
    collect(port, [], fn _, _ -> false end)
    assert [_ | _] = Path.wildcard(Path.join(dir, "journal/*.wj"))

    out = run(s, dir, ["replayed"])
    assert field(out, "count") == "43 corrupt 0"
    assert field(out, "ids") == Enum.join(1..43, ",")
    assert field(out, "five") == "%{again: 5}"
    # Replayed once: a second restart reads the same.
    again = run(s, dir, ["replayed"])

    for key <- ["count", "ids", "five"] do
      assert field(again, key) == field(out, key)
    end
  end

  test "a torn last journal frame after kill -9 is dropped, the rest replayed",
       %{script: s, dir: dir} do
    port = child(s, dir, ["unapplied"])
    lines = collect(port, [], fn line, _ -> line == "done" end)
    kill(lines)
    collect(port, [], fn _, _ -> false end)

    # Cut the last frame (the batch of 41..43) as a crash in the middle of
    # its copy would: it fails its checksum.
    # The writes went to the first segment (the next one is the spare).
    segment = dir |> Path.join("journal/*.wj") |> Path.wildcard() |> Enum.sort() |> hd()

    bin = File.read!(segment)
    {last_start, last_len} = last_frame(bin, 64, nil)
    <<head::binary-size(last_start + 8 + last_len - 1), b, rest::binary>> = bin
    File.write!(segment, <<head::binary, Bitwise.bxor(b, 0xFF), rest::binary>>)

    out = run(s, dir, ["replayed"])
    assert field(out, "count") == "40 corrupt 0"
    assert field(out, "ids") == Enum.join(1..40, ",")
  end

  # The offset and length of the last frame of a journal segment.
  defp last_frame(bin, off, last) do
    case bin do
      <<_::binary-size(off), len::little-32, _crc::little-32, _::binary>> when len > 0 ->
        last_frame(bin, off + 8 + len, {off, len})

      _ ->
        last
    end
  end

  test "a from-start subscription in a new VM replays events whose atoms that VM has not seen",
       %{script: s, dir: dir} do
    # The type's atom exists only in the writer VM (this VM never makes it).
    name = "novel_type_#{System.unique_integer([:positive])}"
    port = child(s, dir, ["novel", name])
    lines = collect(port, [], fn line, _ -> line == "done" end)
    kill(lines)
    out = run(s, dir, ["catch_up"])
    assert field(out, "got") == "20"
    assert field(out, "types") == name
  end

  test "a second VM on the same directory runs hot-only and leaves the data alone",
       %{script: s, dir: dir} do
    port = child(s, dir, ["sample", "hold"])
    lines = collect(port, [], fn line, _ -> line == "done" end)
    [lo, hi] = String.split(field(lines, "range"))

    second = run(s, dir, ["second"])
    assert field(second, "warm_enabled") == "false count 0"
    assert Enum.any?(second, &(&1 =~ "in use by another process"))
    assert "stored" in second

    kill(lines)
    collect(port, [], fn _, _ -> false end)
    assert field(run(s, dir, ["digest", lo, hi]), "digest") == field(lines, "digest")
  end
end
