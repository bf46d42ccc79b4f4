defmodule ElixirScope.Foundation.Validation.ConfigValidator do
  @moduledoc """
  Validates an `ElixirScope.Foundation.Types.Config`.

  The rules run in Rust (`foundation_core::validation::config`), the same
  ones ConfigServer applies to updates. A configuration (or section) that
  passes every rule in its usual shape is accepted here without a NIF call,
  which would cost more than the checks; any other goes to the rules in
  Rust, and this module rebuilds the contract's
  `%ElixirScope.Foundation.Types.Error{}` (category `:config`, subcategory
  `:validation`, `retry_strategy: nil`, `recovery_actions: []`):

  | error_type | code | severity |
  |---|---|---|
  | `:validation_failed` | 1001 | medium |
  | `:invalid_config_value` | 1002 | medium |
  | `:constraint_violation` | 1003 | high |
  | `:range_error` | 1004 | high |

  Sections are checked ai -> capture -> storage -> interface -> dev and the
  first failure wins. As in the original, some shapes raise instead of
  returning an error: a section map without its required keys (`ai` without
  `:provider`; `capture` without `ring_buffer`/`processing`/`vm_tracing`;
  `storage` without `hot`/`warm`/`cold`), or a non-map argument, raises
  `FunctionClauseError`; `ai` without `:analysis` or `:planning`, or a
  config without a section, raises `KeyError`.
  """

  alias ElixirScope.Foundation.{Error, Native, Types}
  alias ElixirScope.Foundation.Types.Config

  @typedoc "`:ok` or the first broken rule."
  @type result :: :ok | {:error, Types.Error.t()}

  # The rules' constants (a test checks them against the core's).
  @providers [:mock, :openai, :anthropic, :gemini]
  @strategies [:fast, :balanced, :thorough]
  @overflow_strategies [:drop_oldest, :drop_newest, :block]
  @compressions [:none, :gzip, :zstd]

  @sections [:ai, :capture, :storage, :interface, :dev]

  defguardp pos_int(v) when is_integer(v) and v > 0

  # Section validators whose function head the core reports as not matching.
  @clause_functions %{
    "ai" => :validate_ai_config,
    "capture" => :validate_capture_config,
    "storage" => :validate_storage_config
  }

  @doc """
  Validates the whole configuration.

      iex> ElixirScope.Foundation.Validation.ConfigValidator.validate(ElixirScope.Foundation.Types.Config.new())
      :ok
  """
  @spec validate(Config.t()) :: result()
  def validate(%Config{} = config) do
    if valid?(config), do: :ok, else: first_failure(config, @sections)
  end

  @doc "Validates the `ai` section (provider, analysis, planning)."
  @spec validate_ai_config(map()) :: result()
  def validate_ai_config(%{provider: _} = ai), do: section(:ai, ai)

  @doc "Validates the `capture` section (ring buffer, processing, VM tracing)."
  @spec validate_capture_config(map()) :: result()
  def validate_capture_config(%{ring_buffer: _, processing: _, vm_tracing: _} = capture),
    do: section(:capture, capture)

  @doc "Validates the `storage` section (hot, warm, cold)."
  @spec validate_storage_config(map()) :: result()
  def validate_storage_config(%{hot: _, warm: _, cold: _} = storage),
    do: section(:storage, storage)

  @doc "Validates the `interface` section."
  @spec validate_interface_config(map()) :: result()
  def validate_interface_config(interface), do: section(:interface, interface)

  @doc "Validates the `dev` section."
  @spec validate_dev_config(map()) :: result()
  def validate_dev_config(dev), do: section(:dev, dev)

  defp section(name, value) do
    if valid_section?(name, value),
      do: :ok,
      else: name |> Native.config_validate_section(value) |> finish(%{name => value}, name)
  end

  # The sections in check order: each one the accepting path does not cover
  # goes to the rules alone (one NIF call over the whole config would walk
  # every section). A missing section goes to the whole-config rules, which
  # raise as the original did.
  defp first_failure(_config, []), do: :ok

  defp first_failure(config, [name | rest]) do
    with {:ok, value} <- Map.fetch(config, name),
         false <- valid_section?(name, value),
         {:error, _} = error <-
           name |> Native.config_validate_section(value) |> finish(config, nil) do
      error
    else
      :error -> config |> Native.config_validate() |> finish(config, nil)
      _valid -> first_failure(config, rest)
    end
  end

  @doc false
  # The constants the accepting paths below use (a test compares them with
  # the core's own).
  def constants do
    %{
      valid_providers: @providers,
      planning_strategies: @strategies,
      overflow_strategies: @overflow_strategies,
      compressions: @compressions
    }
  end

  # Whether every rule passes, for configurations in their usual shape
  # (every checked key present, every value of its type). `false` means
  # "ask the rules": they find the first failure, or accept a shape this
  # does not cover.
  defp valid?(%{ai: ai, capture: capture, storage: storage, interface: interface, dev: dev}) do
    valid_section?(:ai, ai) and valid_section?(:capture, capture) and
      valid_section?(:storage, storage) and valid_section?(:interface, interface) and
      valid_section?(:dev, dev)
  end

  defp valid?(_config), do: false

  defp valid_section?(:ai, %{
         provider: provider,
         analysis: %{max_file_size: size, timeout: timeout, cache_ttl: ttl},
         planning: %{performance_target: target, sampling_rate: rate, default_strategy: strategy}
       })
       when provider in @providers and pos_int(size) and pos_int(timeout) and pos_int(ttl) and
              is_number(target) and target >= 0 and is_number(rate) and rate >= 0 and rate <= 1 and
              strategy in @strategies,
       do: true

  defp valid_section?(:capture, %{
         ring_buffer: %{size: size, max_events: max, overflow_strategy: overflow},
         processing: %{batch_size: batch, flush_interval: flush, max_queue_size: queue},
         vm_tracing: %{
           enable_spawn_trace: spawn,
           enable_exit_trace: exit,
           enable_message_trace: message,
           trace_children: children
         }
       })
       when pos_int(size) and pos_int(max) and overflow in @overflow_strategies and
              pos_int(batch) and pos_int(flush) and pos_int(queue) and is_boolean(spawn) and
              is_boolean(exit) and is_boolean(message) and is_boolean(children),
       do: true

  defp valid_section?(:storage, %{
         hot: %{max_events: max, max_age_seconds: age, prune_interval: prune},
         warm: warm,
         cold: %{enable: false}
       })
       when pos_int(max) and pos_int(age) and pos_int(prune),
       do: valid_warm?(warm)

  defp valid_section?(:interface, %{
         query_timeout: timeout,
         max_results: max,
         enable_streaming: streaming
       })
       when pos_int(timeout) and pos_int(max) and is_boolean(streaming),
       do: true

  defp valid_section?(:dev, %{
         debug_mode: debug,
         verbose_logging: verbose,
         performance_monitoring: monitoring
       })
       when is_boolean(debug) and is_boolean(verbose) and is_boolean(monitoring),
       do: true

  defp valid_section?(_section, _value), do: false

  defp valid_warm?(%{enable: false}), do: true

  defp valid_warm?(%{enable: true, path: path, max_size_mb: size, compression: compression})
       when is_binary(path) and pos_int(size) and compression in @compressions,
       do: true

  defp valid_warm?(_warm), do: false

  defp finish({:ok, :ok}, _config, _section), do: :ok

  # The original raised from a function head that did not match.
  defp finish({:error, {:function_clause, name}}, _config, _section) do
    function = Map.fetch!(@clause_functions, name)
    raise FunctionClauseError, module: __MODULE__, function: function, arity: 1
  end

  # The original raised from `map.key` on a missing key.
  defp finish({:error, {:key_error, key}}, config, _section) do
    key = String.to_existing_atom(key)
    term = if key in [:analysis, :planning], do: config.ai, else: config
    raise KeyError, key: key, term: term
  end

  defp finish({:error, {:invalid_ai_provider, _} = native}, config, _section) do
    %{valid_providers: valid} = Native.validation_constants()
    context = %{provider: config.ai.provider, valid_providers: valid}
    {:error, Error.from_native(native, context)}
  end

  defp finish({:error, native}, _config, _section), do: {:error, Error.from_native(native)}
end
