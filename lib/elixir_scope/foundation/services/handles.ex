defmodule ElixirScope.Foundation.Services.Handles do
  @moduledoc false
  # Where EventStore and TelemetryService publish the native handles of
  # `{:test, ref}` namespaces: a public ETS table (read_concurrency) owned by
  # ProcessRegistry.Owner, so a handle outlives a crash of the service process
  # that created it, and creating or dropping a test namespace never touches
  # `:persistent_term` (each change there scans every process). The
  # `:production` handles stay in `:persistent_term` (see the services).
  #
  # Every function answers as if the table were empty when it does not exist
  # (the application is not started).

  @table :elixir_scope_foundation_handles

  @doc false
  def table, do: @table

  @doc "The value under `key`, or nil."
  def get(key) do
    case :ets.lookup(@table, key) do
      [{_key, value}] -> value
      [] -> nil
    end
  rescue
    ArgumentError -> nil
  end

  @doc "Stores `value` under `key`."
  def put(key, value) do
    :ets.insert(@table, {key, value})
    :ok
  end

  @doc "Removes `key`."
  def delete(key) do
    :ets.delete(@table, key)
    :ok
  rescue
    ArgumentError -> :ok
  end

  @doc "Removes `key` only if it still holds `value`."
  def delete(key, value) do
    :ets.delete_object(@table, {key, value})
    :ok
  rescue
    ArgumentError -> :ok
  end
end
