defmodule ElixirScope.Foundation.Services.ConfigServer.Table do
  @moduledoc false
  # Where ConfigServer publishes its config for callers to read: one public
  # ETS set (`read_concurrency: true`), owned by this process, which the
  # application starts before any ConfigServer and which does nothing else,
  # so the table outlives ConfigServer crashes (a killed server resumes from
  # the config it last published).
  #
  # Rows of a namespace `ns` (only the ConfigServer of `ns` writes them):
  #
  #   {{ns}, config}          the whole config, for `get/0` and error shapes
  #   {{ns, key}, value}      one per top-level key, for path reads, so
  #                           `get([:ai, :provider])` copies only the `ai`
  #                           section out of the table
  #
  # An update rewrites the whole-config row and the one section it changed
  # with a single `:ets.insert/2` (atomic and isolated: no reader sees one
  # without the other). Replaced rows are freed at once, so an update flood
  # leaves no garbage behind (unlike `:persistent_term`, whose replaced
  # values wait for a scan of every process). No namespace's config lives in
  # `:persistent_term`.
  #
  # Every function here runs in the caller and survives a missing table
  # (reads answer `:unpublished`, writes do nothing): ConfigServer then
  # serves reads itself.
  use GenServer

  alias ElixirScope.Foundation.Types.Config

  @table :elixir_scope_foundation_config

  # Writes accept only real namespaces and configs (rows stay few and small
  # whatever a caller passes).
  defguardp namespace?(ns)
            when ns == :production or
                   (is_tuple(ns) and tuple_size(ns) == 2 and elem(ns, 0) == :test and
                      is_reference(elem(ns, 1)))

  @doc false
  def start_link(opts \\ []), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  @impl true
  def init(_opts) do
    _ = :ets.new(@table, [:named_table, :public, :set, read_concurrency: true])
    {:ok, %{}}
  end

  @doc "The whole config published for `namespace`, or nil."
  def published(namespace) do
    case :ets.lookup(@table, {namespace}) do
      [{_, config}] -> config
      [] -> nil
    end
  rescue
    ArgumentError -> nil
  end

  @doc """
  `{:ok, value}` at `path`, `{:published, config}` when the fast walk
  cannot answer (a missing key, a non-map on the way, an improper path: the
  caller derives the exact error from `config`), or `:unpublished`.
  """
  def read(namespace, [key | rest] = path) do
    case :ets.lookup(@table, {namespace, key}) do
      [{_, value}] ->
        case walk(value, rest) do
          {:ok, _} = found -> found
          :slow -> whole(namespace, path)
        end

      [] ->
        whole(namespace, path)
    end
  rescue
    ArgumentError -> :unpublished
  end

  def read(namespace, path), do: whole(namespace, path)

  defp whole(namespace, []) do
    case published(namespace) do
      nil -> :unpublished
      config -> {:ok, config}
    end
  end

  defp whole(namespace, _path) do
    case published(namespace) do
      nil -> :unpublished
      config -> {:published, config}
    end
  end

  defp walk(value, []), do: {:ok, value}

  defp walk(%{} = map, [key | rest]) do
    case map do
      %{^key => value} -> walk(value, rest)
      _ -> :slow
    end
  end

  defp walk(_value, _rest), do: :slow

  @doc """
  Publishes `config` as the namespace's whole config. `previous` is the
  config published before (nil if none): rows of top-level keys it had and
  `config` lacks are deleted after the insert.
  """
  def publish(namespace, config, previous \\ nil)

  def publish(namespace, %Config{} = config, previous) when namespace?(namespace) do
    rows = [
      {{namespace}, config}
      | for({key, value} <- :maps.to_list(config), do: {{namespace, key}, value})
    ]

    :ets.insert(@table, rows)

    if is_map(previous) do
      for key <- Map.keys(previous),
          not is_map_key(config, key),
          do: :ets.delete(@table, {namespace, key})
    end

    :ok
  rescue
    ArgumentError -> :ok
  end

  @doc """
  Publishes `config`, which differs from the one published before only
  under its top-level `key`.
  """
  def publish_key(namespace, %Config{} = config, key) when namespace?(namespace) do
    :ets.insert(@table, [{{namespace}, config}, {{namespace, key}, Map.fetch!(config, key)}])
    :ok
  rescue
    ArgumentError -> :ok
  end

  @doc "Deletes every row of the namespace (`config`: the config it last published)."
  def erase(namespace, %{} = config) when namespace?(namespace) do
    keys = Map.keys(config) ++ Map.keys(published(namespace) || %{})
    for key <- Enum.uniq(keys), do: :ets.delete(@table, {namespace, key})
    :ets.delete(@table, {namespace})
    :ok
  rescue
    ArgumentError -> :ok
  end
end
