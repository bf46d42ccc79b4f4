defmodule ElixirScope.Foundation.SandboxHostTest do
  # A host project without `test_mode` in its config whose async test
  # modules call the plain facades (through the host's own code) and assert
  # exact counts, run three times with different seeds: only an isolated
  # foundation per test makes every run pass.
  use ExUnit.Case, async: true

  @moduletag :host_dependency
  @moduletag timeout: 900_000

  alias ElixirScope.Foundation.Test.HostProject

  @modules 4
  @seeds [1, 42, 4242]

  test "async host tests using ElixirScope.Foundation.Case see exact counts" do
    dir = HostProject.tmp_dir("es_sandbox_host")
    write_project(dir)

    for seed <- @seeds do
      {output, status} =
        HostProject.mix(dir, ["test", "--seed", to_string(seed)], [{"MIX_ENV", "test"}])

      assert status == 0, "host mix test (seed #{seed}) failed:\n#{output}"
      # Every module's tests ran, concurrently (async), with no failure.
      assert output =~ ~r/#{@modules * 3 + 2} tests, 0 failures/, output
    end
  end

  defp write_project(dir) do
    HostProject.write!(dir)
    File.mkdir_p!(Path.join(dir, "lib"))
    File.mkdir_p!(Path.join(dir, "test"))

    # No test_mode: the sandbox needs none.
    File.write!(Path.join(dir, "config/config.exs"), """
    import Config
    config :logger, level: :warning
    """)

    # The code under test knows nothing of namespaces.
    File.write!(Path.join(dir, "lib/host_app.ex"), """
    defmodule HostApp do
      alias ElixirScope.Foundation.{Config, Events, Telemetry}

      def charge(amount) do
        {:ok, rate} = Config.get([:ai, :planning, :sampling_rate])
        :ok = Config.update([:ai, :planning, :sampling_rate], amount / 1000)
        {:ok, event} = Events.new_event(:charge, %{amount: amount, rate: rate})
        {:ok, _id} = Events.store(event)
        :ok = Telemetry.emit_counter([:host_app, :charges], %{})
      end
    end
    """)

    File.write!(Path.join(dir, "test/test_helper.exs"), "ExUnit.start()\n")

    for m <- 1..@modules do
      File.write!(Path.join(dir, "test/charges_#{m}_test.exs"), async_module(m))
    end

    File.write!(Path.join(dir, "test/shared_test.exs"), shared_module())
  end

  defp async_module(m) do
    """
    defmodule HostApp.Charges#{m}Test do
      use ElixirScope.Foundation.Case, async: true

      alias ElixirScope.Foundation.{Config, Events, Telemetry}

      defp charges(n) do
        :ok = Config.subscribe()
        Enum.each(1..n, &HostApp.charge/1)
        for i <- 1..n, do: assert_receive({:config_notification, {:config_updated, _, v}} when v == i / 1000, 5_000)
        refute_receive {:config_notification, _}, 20

        {:ok, charges} = Events.query(%{event_type: :charge})
        assert length(charges) == n
        {:ok, metrics} = Telemetry.get_metrics()
        assert metrics.host_app.charges.count == n
        assert metrics.foundation.config_updates == n
        assert {:ok, %{updates_count: ^n}} = Config.status()
      end

      test "#{m}: 30 charges" do
        charges(30)
      end

      test "#{m}: 11 charges" do
        charges(11)
      end

      test "#{m}: a Task charges in the test's sandbox", %{foundation_namespace: ns} do
        Task.async(fn -> HostApp.charge(5) end) |> Task.await()
        assert {:ok, [%{data: %{amount: 5}}]} = Events.query(%{event_type: :charge})
        assert {:ok, [_]} = Events.query(%{event_type: :charge}, namespace: ns)
        assert {:ok, []} = Events.query(%{event_type: :charge}, namespace: :production)
      end
    end
    """
  end

  defp shared_module do
    """
    defmodule HostApp.SharedTest do
      use ElixirScope.Foundation.Case

      alias ElixirScope.Foundation.{Events, Sandbox}

      test "a plain process charges in the shared sandbox" do
        test = self()
        spawn(fn -> send(test, {:charged, HostApp.charge(3)}) end)
        assert_receive {:charged, :ok}, 5_000
        assert {:ok, [%{data: %{amount: 3}}]} = Events.query(%{event_type: :charge})
      end

      test "allow/2 works for a process started elsewhere" do
        test = self()
        pid = spawn(fn -> receive do: (:go -> send(test, {:charged, HostApp.charge(4)})) end)
        :ok = Sandbox.allow(self(), pid)
        send(pid, :go)
        assert_receive {:charged, :ok}, 5_000
        assert {:ok, [%{data: %{amount: 4}}]} = Events.query(%{event_type: :charge})
      end
    end
    """
  end
end
