defmodule Bench.OriginalLogic do
  @moduledoc """
  A model of the original layer's pure functions (validators, event and
  config logic), doing their per-call work in plain Elixir, for comparisons
  in the same run: the rules of `test/support/validation_reference.ex`, a
  `%Types.Error{}` built from a keyword list for every failure (as the
  original's validators did), and the original's id generator
  (`unique_integer * 1_000_000` plus a hash of a new reference's text).
  """

  alias ElixirScope.Foundation.Test.ValidationReference, as: Ref
  alias ElixirScope.Foundation.Types
  alias ElixirScope.Foundation.Types.Event

  # error_type => {code, severity}, per category.
  @config_errors %{
    validation_failed: {1001, :medium},
    invalid_config_value: {1002, :medium},
    constraint_violation: {1003, :high},
    range_error: {1004, :high}
  }
  @event_errors %{
    validation_failed: {2001, :high},
    type_mismatch: {2002, :medium},
    data_too_large: {2003, :high},
    invalid_event_type: {2004, :medium}
  }

  @doc "`ConfigValidator.validate/1`."
  def validate_config(config), do: config |> Ref.validate_config() |> result(:config)

  @doc "`EventValidator.validate/1`."
  def validate_event(event), do: event |> Ref.validate_event() |> result(:data)

  @doc "`EventValidator.validate_event_type/1`."
  def validate_event_type(type) do
    cond do
      not is_atom(type) -> error(:data, :type_mismatch, "Event type must be an atom")
      type in Ref.allowed_types() -> :ok
      true -> error(:data, :invalid_event_type, "Invalid event type")
    end
  end

  @doc "`Utils.generate_id/0`."
  def generate_id do
    System.unique_integer([:positive]) * 1_000_000 +
      abs(:erlang.phash2(:erlang.ref_to_list(make_ref()))) + 1
  end

  @doc "`EventLogic.create_event/3` with no options."
  def create_event(type, data) do
    event = %Event{
      event_id: generate_id(),
      event_type: type,
      timestamp: System.monotonic_time(:millisecond),
      wall_time: DateTime.utc_now(),
      node: Node.self(),
      pid: self(),
      correlation_id: nil,
      parent_id: nil,
      data: data
    }

    case validate_event(event) do
      :ok -> {:ok, event}
      error -> error
    end
  end

  @doc "`EventLogic.create_function_entry/5` with no options."
  def create_function_entry(module, function, arity, args) do
    data = %{
      call_id: generate_id(),
      module: module,
      function: function,
      arity: arity,
      args: truncate_if_large(args),
      caller_module: nil,
      caller_function: nil,
      caller_line: nil
    }

    create_event(:function_entry, data)
  end

  @doc "`ConfigLogic.update_config/3` for an updatable path."
  def update_config(config, path, value) do
    new_config = put_in(config, path, value)

    case validate_config(new_config) do
      :ok -> {:ok, new_config}
      error -> error
    end
  end

  @doc "`Utils.deep_size/1`."
  def deep_size(term) do
    :erlang.external_size(term)
  rescue
    _ -> 0
  end

  @doc "`Utils.truncate_if_large/2` with the default limit, for data under it."
  def truncate_if_large(data, max \\ 10_000) do
    if :erlang.external_size(data) > max,
      do: %{truncated: true, original_size: :erlang.external_size(data)},
      else: data
  end

  @doc "`EventLogic.serialize_event/1` and `deserialize_event/1`."
  def serialize_event(event), do: {:ok, :erlang.term_to_binary(event, [:compressed])}

  def deserialize_event(binary) do
    event = :erlang.binary_to_term(binary)

    case validate_event(event) do
      :ok -> {:ok, event}
      error -> error
    end
  end

  defp result(:ok, _category), do: :ok
  defp result({:error, {type, message}}, category), do: error(category, type, message)
  defp result({:raise, module}, _category), do: raise(module)

  defp error(category, type, message) do
    {code, severity} =
      Map.fetch!(if(category == :config, do: @config_errors, else: @event_errors), type)

    {:error,
     Types.Error.new(
       error_type: type,
       message: message,
       code: code,
       category: category,
       subcategory: :validation,
       severity: severity,
       context: %{},
       retry_strategy: nil,
       recovery_actions: []
     )}
  end
end
