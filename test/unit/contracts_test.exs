defmodule ElixirScope.Foundation.ContractsTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Contracts

  # The callbacks of the three behaviours callers implement or depend on.
  test "Configurable callbacks" do
    assert Enum.sort(Contracts.Configurable.behaviour_info(:callbacks)) ==
             Enum.sort(
               get: 0,
               get: 1,
               update: 2,
               validate: 1,
               updatable_paths: 0,
               reset: 0,
               available?: 0
             )
  end

  test "EventStore callbacks" do
    assert Enum.sort(Contracts.EventStore.behaviour_info(:callbacks)) ==
             Enum.sort(
               store: 1,
               store_batch: 1,
               get: 1,
               query: 1,
               get_by_correlation: 1,
               prune_before: 1,
               stats: 0,
               available?: 0,
               initialize: 0,
               status: 0
             )
  end

  test "Telemetry callbacks" do
    assert Enum.sort(Contracts.Telemetry.behaviour_info(:callbacks)) ==
             Enum.sort(
               execute: 3,
               measure: 3,
               emit_counter: 2,
               emit_gauge: 3,
               get_metrics: 0,
               attach_handlers: 1,
               detach_handlers: 1,
               available?: 0,
               initialize: 0,
               status: 0
             )
  end

  test "no optional callbacks" do
    for mod <- [Contracts.Configurable, Contracts.EventStore, Contracts.Telemetry] do
      assert mod.behaviour_info(:optional_callbacks) == []
    end
  end

  test "every callback is documented" do
    for mod <- [Contracts.Configurable, Contracts.EventStore, Contracts.Telemetry] do
      {:docs_v1, _, _, _, %{"en" => _}, _, docs} = Code.fetch_docs(mod)

      documented =
        for {{:callback, name, arity}, _, _, %{"en" => _}, _} <- docs, do: {name, arity}

      assert Enum.sort(documented) == Enum.sort(mod.behaviour_info(:callbacks))
    end
  end
end
