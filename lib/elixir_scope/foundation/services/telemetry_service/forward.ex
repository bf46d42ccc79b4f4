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

  @doc false
  # `execute(name, %{counter: value}, metadata)` for a caller that knows the
  # load was tried (`tried?/0`), so only the export table is read; the
  # measurements map is built only when it is forwarded.
  @spec counter_tried(term(), term(), term()) :: :ok
  def counter_tried(name, value, metadata) do
    if function_exported?(:telemetry, :execute, 3),
      do: apply(telemetry(), :execute, [name, %{counter: value}, metadata])

    :ok
  catch
    _kind, _reason -> :ok
  end

  @doc false
  # Tries the load once per VM (as the first `execute/3` would); true from
  # then on. The TelemetryService calls it before publishing its handle, so
  # a caller that found a handle may use `counter_tried/3`.
  @spec try_load() :: true
  def try_load do
    if not :persistent_term.get(@tried, false) do
      _ = Code.ensure_loaded?(:telemetry)
      :persistent_term.put(@tried, true)
    end

    true
  end

  # A runtime module name: neither the compiler nor Dialyzer should expect
  # `:telemetry` to exist when this library is built.
  defp telemetry, do: :telemetry

  defp loaded? do
    if :persistent_term.get(@tried, false) do
      function_exported?(:telemetry, :execute, 3)
    else
      try_load()
      function_exported?(:telemetry, :execute, 3)
    end
  end
end
