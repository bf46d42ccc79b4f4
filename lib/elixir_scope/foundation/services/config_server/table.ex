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
  #   {{ns}, version, keys}          header: the config's top-level keys
  #                                  (`:__struct__` included) and its version
  #   {{ns, key}, value, version}    one per top-level key, with the version
  #                                  that last wrote it
  #
  # A path read (`get([:ai, :provider])`) is one lookup of its section row,
  # so it copies only that section out of the table. An update rewrites the
  # sections it changed and the header with a single `:ets.insert/2` (atomic
  # and isolated), copying neither the rest of the config nor the whole of
  # it. A whole-config read (`get/0`) reads the header, then each key's row,
  # and accepts the result only if no row is newer than the header (else an
  # update came in between, and it reads again): the rows it returns are
  # those of one published version. Replaced rows are freed at once, so an
  # update flood leaves no garbage behind (unlike `:persistent_term`, whose
  # replaced values wait for a scan of every process). No namespace's config
  # lives in `:persistent_term`.
  #
  # `:production` path reads are also cached in the reading process: its
  # dictionary keeps `{{ConfigServer.Table, path}, {version, value}}` for
  # each path it read, valid while the production version counter (an
  # `:atomics` cell, found through one `:persistent_term` key written once
  # per VM) still holds `version`. A hit costs a `:persistent_term.get/2`, an
  # `:atomics.get/2` and a `Process.get/1`, no ETS copy. The server bumps the
  # counter after every publication and on a normal stop, and never reuses a
  # version (it continues from the counter after a restart), so a cached
  # value is never older than the last publication that completed before
  # the read started. Only values found are cached (at most one per path of
  # the config, whose paths are few); a process's cache dies with it.
  #
  # Every function here runs in the caller and survives a missing table
  # (reads answer nil / `:unpublished`, writes do nothing): ConfigServer then
  # serves reads itself.
  use GenServer

  alias ElixirScope.Foundation.Types.Config

  @table :elixir_scope_foundation_config
  # An atom key: hashed in one step, a tuple element by element, on every
  # production read.
  @counter :elixir_scope_foundation_config_version

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

    # Once per VM: the counter outlives application restarts, so versions
    # never repeat.
    if :persistent_term.get(@counter, nil) == nil,
      do: :persistent_term.put(@counter, :atomics.new(1, signed: true))

    {:ok, %{}}
  end

  @doc "The whole config published for `namespace`, or nil."
  def published(namespace), do: assemble(namespace, 5)

  @doc """
  The version the namespace's next publication must use: above the one
  published (and, for `:production`, above every version ever published).
  """
  def next_version(namespace) do
    published =
      case :ets.lookup(@table, {namespace}) do
        [{_, version, _keys}] -> version
        [] -> 0
      end

    max(published, counter_value(namespace)) + 1
  rescue
    ArgumentError -> 1
  end

  defp counter_value(:production) do
    case :persistent_term.get(@counter, nil) do
      nil -> 0
      counter -> :atomics.get(counter, 1)
    end
  end

  defp counter_value(_namespace), do: 0

  # After a publication (or an erase) of `:production`: invalidates the
  # readers' cached values.
  defp bump(:production, version) do
    case :persistent_term.get(@counter, nil) do
      nil -> :ok
      counter -> :atomics.put(counter, 1, version)
    end
  end

  defp bump(_namespace, _version), do: :ok

  defp assemble(namespace, tries) do
    with [{_, version, keys}] <- :ets.lookup(@table, {namespace}),
         {:ok, pairs} <- collect(namespace, keys, version, []) do
      :maps.from_list(pairs)
    else
      :retry when tries > 0 -> assemble(namespace, tries - 1)
      _ -> nil
    end
  rescue
    ArgumentError -> nil
  end

  defp collect(_namespace, [], _version, pairs), do: {:ok, pairs}

  defp collect(namespace, [key | keys], version, pairs) do
    case :ets.lookup(@table, {namespace, key}) do
      [{_, value, written}] when written <= version ->
        collect(namespace, keys, version, [{key, value} | pairs])

      _ ->
        :retry
    end
  end

  @doc """
  `{:ok, value}` at `path`, `{:published, config}` when the fast walk
  cannot answer (a missing key, a non-map on the way, an improper path: the
  caller derives the exact error from `config`), or `:unpublished`.
  """
  def read(:production, path) do
    case :persistent_term.get(@counter, nil) do
      nil ->
        read_rows(:production, path)

      counter ->
        version = :atomics.get(counter, 1)

        case Process.get({__MODULE__, path}) do
          {^version, value} ->
            {:ok, value}

          _ ->
            case read_rows(:production, path) do
              {:ok, value} = found ->
                Process.put({__MODULE__, path}, {version, value})
                found

              other ->
                other
            end
        end
    end
  end

  def read(namespace, path), do: read_rows(namespace, path)

  defp read_rows(namespace, [key | rest] = path) do
    case :ets.lookup(@table, {namespace, key}) do
      [{_, value, _version}] ->
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

  defp read_rows(namespace, path), do: whole(namespace, path)

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
  Publishes `config` as the namespace's whole config, at `version` (greater
  than the version published before). `previous` is the config published
  before (nil if none): rows of top-level keys it had and `config` lacks are
  deleted after the insert (the new header no longer lists them).
  """
  def publish(namespace, config, version, previous \\ nil)

  def publish(namespace, %Config{} = config, version, previous)
      when namespace?(namespace) and is_integer(version) do
    pairs = :maps.to_list(config)
    header = {{namespace}, version, for({key, _} <- pairs, do: key)}

    :ets.insert(@table, [
      header | for({key, value} <- pairs, do: {{namespace, key}, value, version})
    ])

    bump(namespace, version)

    if is_map(previous) do
      previous
      |> Map.keys()
      |> Enum.reject(&is_map_key(config, &1))
      |> Enum.each(&:ets.delete(@table, {namespace, &1}))
    end

    :ok
  rescue
    ArgumentError -> :ok
  end

  @doc """
  Publishes `config` at `version`: it differs from the config published
  before only under its top-level `changed` keys (same keys).
  """
  def publish_keys(namespace, %Config{} = config, changed, keys, version)
      when namespace?(namespace) and is_integer(version) do
    :ets.insert(@table, [
      {{namespace}, version, keys}
      | for(key <- changed, do: {{namespace, key}, Map.fetch!(config, key), version})
    ])

    bump(namespace, version)
    :ok
  rescue
    ArgumentError -> :ok
  end

  @doc "Deletes every row of the namespace (`config`: the config it last published)."
  def erase(namespace, %{} = config) when namespace?(namespace) do
    next = next_version(namespace)

    listed =
      case :ets.lookup(@table, {namespace}) do
        [{_, _version, keys}] -> keys
        [] -> []
      end

    for key <- Enum.uniq(Map.keys(config) ++ listed), do: :ets.delete(@table, {namespace, key})
    :ets.delete(@table, {namespace})
    bump(namespace, next)
    :ok
  rescue
    ArgumentError -> :ok
  end
end
