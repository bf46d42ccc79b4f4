defmodule ElixirScope.Foundation.Services.TelemetryService.Nested do
  @moduledoc false
  # Folds the flat metric snapshot into the nested map `get_metrics` returns.
  #
  # Each name `[a, b, ..., z]` becomes `metrics[a][b]...[z] = entry`. Four
  # foundation counters are exposed as their integer call counts instead.
  # Names are folded shortest-first, so a deeper name lands inside the entry
  # map of its parent name; a non-map value in the way of a deeper name is
  # replaced by a map; the four counts are folded last and always win.

  @counts %{
    [:foundation, :event_store, :events_stored] => [:foundation, :events_stored],
    [:foundation, :config_updates] => [:foundation, :config_updates],
    [:foundation, :config_resets] => [:foundation, :config_resets],
    [:foundation, :config_operations] => [:foundation, :config_operations]
  }

  @doc false
  @spec build([tuple()], integer()) :: map()
  def build(entries, retrieved_at) do
    entries
    |> Enum.sort_by(fn {name, _, _, _, _} -> {Map.has_key?(@counts, name), length(name), name} end)
    |> Enum.reduce(%{}, &fold/2)
    |> Map.put(:retrieved_at, retrieved_at)
  end

  defp fold({[], _count, _ts, _measurements, _metadata}, acc), do: acc

  defp fold({name, count, timestamp, measurements, metadata}, acc) do
    case Map.fetch(@counts, name) do
      {:ok, path} ->
        put_path(acc, path, count)

      :error ->
        entry = %{
          count: count,
          timestamp: timestamp,
          measurements: measurements,
          metadata: metadata
        }

        put_path(acc, name, entry)
    end
  end

  defp put_path(map, [key], value) do
    Map.update(map, key, value, fn
      existing when is_map(existing) and is_map(value) -> Map.merge(existing, value)
      _existing -> value
    end)
  end

  defp put_path(map, [key | rest], value) do
    child =
      case Map.get(map, key) do
        child when is_map(child) -> child
        _ -> %{}
      end

    Map.put(map, key, put_path(child, rest, value))
  end

  @doc false
  # Keeps only what lies under `pattern` in a nested metrics map (same
  # nesting as the input); `[]` keeps everything.
  @spec under(map(), [term()]) :: map()
  def under(metrics, []), do: metrics

  def under(metrics, [key | rest]) when is_map(metrics) do
    case Map.fetch(metrics, key) do
      {:ok, child} when rest == [] -> %{key => child}
      {:ok, child} when is_map(child) -> prune(key, under(child, rest))
      _ -> %{}
    end
  end

  def under(_metrics, _pattern), do: %{}

  defp prune(_key, empty) when map_size(empty) == 0, do: %{}
  defp prune(key, child), do: %{key => child}
end
