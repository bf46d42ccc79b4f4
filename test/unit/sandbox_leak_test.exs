defmodule ElixirScope.Foundation.SandboxLeakTest do
  # Not async: it counts VM-wide resources before and after.
  use ExUnit.Case, async: false

  import ElixirScope.Foundation.TestSupport.Eventually

  alias ElixirScope.Foundation.{Events, Native, ProcessRegistry, Sandbox, Telemetry}
  alias ElixirScope.Foundation.Services.Handles

  @moduletag timeout: 300_000

  defp snapshot do
    %{
      processes: length(Process.list()),
      sandbox_rows: :ets.info(Sandbox.table(), :size),
      handle_rows: :ets.info(Handles.table(), :size),
      backup_rows: :ets.info(:process_registry_backup, :size),
      waiter_rows: :ets.info(:process_registry_waiters, :size),
      registry_entries: Registry.count(ProcessRegistry),
      ets_tables: length(:ets.all()),
      persistent_terms: :persistent_term.info().count,
      os_threads: os_threads(),
      native_heap: Native.native_heap_bytes()
    }
  end

  defp os_threads do
    case File.ls("/proc/self/task") do
      {:ok, tasks} -> length(tasks)
      {:error, _} -> :unknown
    end
  end

  # Some work in the sandbox, so its store, metrics and audit path are used.
  defp use_sandbox do
    {:ok, e} = Events.new_event(:leak_test, %{})
    {:ok, _} = Events.store(e)
    :ok = ElixirScope.Foundation.Config.update([:dev, :debug_mode], true)
    :ok = Telemetry.emit_counter([:leak_test], %{})
  end

  test "1 000 checkouts (half checked in, half ended by the owner's exit) leave nothing" do
    # The first checkout of the VM sets a flag in :persistent_term, once,
    # and so does the first counter (whether `:telemetry` is loaded).
    _ = Sandbox.checkout()
    use_sandbox()
    :ok = Sandbox.checkin()
    # Sandboxes of earlier tests end asynchronously when their owners exit.
    assert eventually(fn -> :ets.info(Sandbox.table(), :size) == 0 end)
    before = snapshot()

    for _ <- 1..500 do
      ns = Sandbox.checkout()
      use_sandbox()
      assert Sandbox.current() == ns
      :ok = Sandbox.checkin()
    end

    for _batch <- 1..10 do
      1..50
      |> Enum.map(fn _ ->
        spawn_monitor(fn ->
          _ns = Sandbox.checkout()
          use_sandbox()
        end)
      end)
      |> Enum.each(fn {pid, ref} ->
        assert_receive {:DOWN, ^ref, :process, ^pid, :normal}, 10_000
      end)
    end

    # Processes of earlier tests (and their registry entries) may still be
    # ending: fewer is fine. The
    # native heap (stores, metrics) must come back within 64 KiB (one
    # leaked store alone holds more); its frees can lag a process's exit
    # while the VM collects the literal areas that config publications
    # left, so this also waits for that to finish before the next test.
    exact = [:processes, :registry_entries, :native_heap]

    settled? = fn ->
      now = snapshot()

      now.processes <= before.processes and
        now.registry_entries <= before.registry_entries and
        now.native_heap <= before.native_heap + 65_536 and
        Map.drop(now, exact) == Map.drop(before, exact)
    end

    assert eventually(settled?, 5_000),
           "before: #{inspect(before)}\nafter:  #{inspect(snapshot())}"

    # Every sandbox's config publication left a literal area for the VM to
    # collect; until that is done (a few hundred ms), native memory of
    # exiting processes is freed late. Let it finish, so the next test
    # measures a quiet VM: five dropped handles in a row freed at once.
    assert eventually(fn -> Enum.all?(1..5, fn _ -> frees_at_once?() end) end, 5_000)
  end

  # Whether a native handle dropped by an exiting process is freed at once.
  defp frees_at_once? do
    before = Native.native_heap_bytes()

    {pid, ref} =
      spawn_monitor(fn ->
        handle = Native.metrics_new(1_000)
        pad = :binary.copy("x", 200)

        for i <- 1..500,
            do:
              {:ok, _} =
                Native.metrics_emit_counter(handle, [:leak_probe, :"n#{i}"], 1, %{pad: pad}, 1)
      end)

    assert_receive {:DOWN, ^ref, :process, ^pid, :normal}, 5_000

    :erlang.garbage_collect()
    Native.native_heap_bytes() <= before
  end
end
