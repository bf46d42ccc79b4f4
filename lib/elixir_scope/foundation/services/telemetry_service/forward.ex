defmodule ElixirScope.Foundation.Services.TelemetryService.Forward do
  @moduledoc false
  # Forwards events to the `:telemetry` library when the host has it loaded.
  #
  # Detection happens at call time, never at compile time (the host may load
  # `:telemetry` after this library): the first call tries
  # `Code.ensure_loaded?(:telemetry)` once per VM (remembered in
  # persistent_term); every call then checks `function_exported?/3`, a BIF
  # that reads the export table, so a module loaded (or purged) later is seen
  # at once. Exceptions, throws and exits from `:telemetry` or its handlers
  # are swallowed: forwarding never breaks the caller.

  # An atom key: persistent_term hashes an atom in one step, a tuple element
  # by element.
  @tried :elixir_scope_foundation_telemetry_forward_tried

  @doc false
  @spec execute(term(), term(), term()) :: :ok
  def execute(name, measurements, metadata) do
    if loaded?(), do: apply(telemetry(), :execute, [name, measurements, metadata])
    :ok
  catch
    # Raises too (kind :error): nothing from `:telemetry` reaches the caller.
    _kind, _reason -> :ok
  end

  # A runtime module name: neither the compiler nor Dialyzer should expect
  # `:telemetry` to exist when this library is built.
  defp telemetry, do: :telemetry

  defp loaded? do
    if :persistent_term.get(@tried, false) do
      function_exported?(:telemetry, :execute, 3)
    else
      _ = Code.ensure_loaded?(:telemetry)
      :persistent_term.put(@tried, true)
      function_exported?(:telemetry, :execute, 3)
    end
  end
end
