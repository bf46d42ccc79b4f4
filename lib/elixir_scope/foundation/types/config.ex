defmodule ElixirScope.Foundation.Types.Config do
  @moduledoc """
  The ElixirScope configuration tree, with `Access` support.

  Nested sections are plain atom-keyed maps, so `config[:ai][:provider]`,
  `put_in(config, [:dev, :debug_mode], true)` and `get_and_update_in/3` work.
  Validation is `ElixirScope.Foundation.Validation.ConfigValidator`'s job.
  """

  @behaviour Access

  defstruct ai: %{
              provider: :mock,
              api_key: nil,
              model: "gpt-4",
              analysis: %{max_file_size: 1_000_000, timeout: 30_000, cache_ttl: 3600},
              planning: %{
                default_strategy: :balanced,
                performance_target: 0.01,
                sampling_rate: 1.0
              }
            },
            capture: %{
              ring_buffer: %{
                size: 1024,
                max_events: 1000,
                overflow_strategy: :drop_oldest,
                num_buffers: :schedulers
              },
              processing: %{batch_size: 100, flush_interval: 50, max_queue_size: 1000},
              vm_tracing: %{
                enable_spawn_trace: true,
                enable_exit_trace: true,
                enable_message_trace: false,
                trace_children: true
              }
            },
            storage: %{
              hot: %{max_events: 100_000, max_age_seconds: 3600, prune_interval: 60_000},
              warm: %{
                enable: false,
                path: "./elixir_scope_data",
                max_size_mb: 100,
                compression: :zstd
              },
              cold: %{enable: false}
            },
            interface: %{query_timeout: 10_000, max_results: 1000, enable_streaming: true},
            dev: %{debug_mode: false, verbose_logging: false, performance_monitoring: true}

  @typedoc "AI provider (the validator also accepts `:gemini`)."
  @type ai_provider :: :mock | :openai | :anthropic
  @typedoc "Planning strategy."
  @type sampling_strategy :: :balanced | :fast | :thorough
  @typedoc "Ring buffer overflow strategy (the validator accepts `:block`, not `:error`)."
  @type overflow_strategy :: :drop_oldest | :drop_newest | :error
  @typedoc "Warm storage compression."
  @type compression :: :zstd | :gzip | :none

  @type t :: %__MODULE__{
          ai: map(),
          capture: map(),
          storage: map(),
          interface: map(),
          dev: map()
        }

  @doc "The default configuration."
  @spec new() :: t()
  def new, do: %__MODULE__{}

  @doc """
  The default configuration deep-merged with `overrides`. A map value merges
  into a map section recursively; anything else replaces the value. Unknown
  keys are added to the struct map, as in the original.

      iex> ElixirScope.Foundation.Types.Config.new(dev: %{debug_mode: true}).dev
      %{debug_mode: true, verbose_logging: false, performance_monitoring: true}
  """
  @spec new(keyword()) :: t()
  def new(overrides) when is_list(overrides) do
    Enum.reduce(overrides, new(), fn {key, value}, config ->
      case Map.get(config, key) do
        current when is_map(current) and is_map(value) ->
          Map.put(config, key, deep_merge(current, value))

        _ ->
          Map.put(config, key, value)
      end
    end)
  end

  defp deep_merge(left, right) do
    Map.merge(left, right, fn
      _key, l, r when is_map(l) and is_map(r) -> deep_merge(l, r)
      _key, _l, r -> r
    end)
  end

  @doc "Access callback: `Map.fetch/2` on the struct."
  @impl Access
  @spec fetch(t(), term()) :: {:ok, term()} | :error
  def fetch(config, key), do: Map.fetch(config, key)

  @doc """
  Access callback: `Map.get_and_update/3`, then the struct is rebuilt with
  `struct/2`, so unknown top-level keys are dropped and `:pop` resets the
  key to its default (the original's behaviour).
  """
  @impl Access
  @spec get_and_update(t(), term(), (term() -> {term(), term()} | :pop)) :: {term(), t()}
  def get_and_update(config, key, fun) when is_map(config) do
    {current, updated} = config |> Map.from_struct() |> Map.get_and_update(key, fun)
    {current, struct(__MODULE__, updated)}
  end

  @doc "Access callback: returns the value and the config with that key reset to its default."
  @impl Access
  @spec pop(t(), term()) :: {term(), t()}
  def pop(config, key) when is_map(config) do
    {value, rest} = config |> Map.from_struct() |> Map.pop(key)
    {value, struct(__MODULE__, rest)}
  end
end
