# Compiled only where ExUnit is available, so a host's production build
# neither needs nor warns about it.
if Code.ensure_loaded?(ExUnit.CaseTemplate) do
  defmodule ElixirScope.Foundation.Case do
    @moduledoc """
    An `ExUnit.CaseTemplate` that gives every test its own isolated
    foundation (ConfigServer built from the application env, EventStore,
    TelemetryService), so tests that call the plain facades can run async:

        defmodule MyApp.BillingTest do
          use ElixirScope.Foundation.Case, async: true

          test "counts", %{foundation_namespace: ns} do
            :ok = ElixirScope.Foundation.Config.update([:dev, :debug_mode], true)
            ...
          end
        end

    `setup` calls `ElixirScope.Foundation.Sandbox.checkout/1` in the test
    process and puts the namespace in the context as
    `:foundation_namespace`. In a module that is not async the sandbox is
    checked out in shared mode, so every process that belongs to no other
    sandbox uses it. The sandbox ends with the test process, and the test
    (its `on_exit` callbacks) waits until it is gone. See
    `ElixirScope.Foundation.Sandbox` for `allow/2` and the resolution rules.
    """
    use ExUnit.CaseTemplate

    alias ElixirScope.Foundation.Sandbox

    using do
      quote do
        alias ElixirScope.Foundation.Sandbox
      end
    end

    setup tags do
      namespace = Sandbox.checkout(shared: not Map.get(tags, :async, false))
      sup = Sandbox.supervisor()
      # The sandbox ends with the test process; the test is over once it is
      # gone, so nothing of it overlaps the next test.
      on_exit(fn -> await_down(sup) end)
      {:ok, foundation_namespace: namespace}
    end

    defp await_down(nil), do: :ok

    defp await_down(pid) when is_pid(pid) do
      ref = Process.monitor(pid)

      receive do
        {:DOWN, ^ref, :process, ^pid, _reason} -> :ok
      after
        30_000 -> Process.demonitor(ref, [:flush])
      end

      :ok
    end
  end
end
