defmodule ElixirScope.Foundation.Validation.ConfigValidator do
  @moduledoc """
  Validates an `ElixirScope.Foundation.Types.Config`.

  The rules run in Rust (`foundation_core::validation::config`); this module
  passes the config to the NIF and rebuilds the contract's
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
  def validate(%Config{} = config), do: config |> Native.config_validate() |> finish(config, nil)

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
    name |> Native.config_validate_section(value) |> finish(%{name => value}, name)
  end

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
