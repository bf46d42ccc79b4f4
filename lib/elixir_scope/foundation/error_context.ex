defmodule ElixirScope.Foundation.ErrorContext do
  @moduledoc """
  Operation contexts for richer errors: an operation id, a correlation id,
  metadata and a trail of breadcrumbs (`module.function` steps with
  millisecond monotonic timestamps).

  Two ways to run an operation under a context:

    * `with_context/2` (the original API) stores the context in the process
      dictionary under `:error_context` while `fun/0` runs, so code deeper in
      the call stack can read it with `get_current_context/0`;
    * `run/2` passes the context explicitly to `fun/1` and never touches the
      process dictionary (safe with nested operations, tasks and code that
      must not depend on hidden state).

  Both return `fun`'s result unchanged, or `{:error, %ElixirScope.Foundation.Error{}}`
  (`:internal_error`, code 2401) when `fun` raises. Errors built here are
  always `%ElixirScope.Foundation.Error{}`.

  ## Telemetry

  On success both emit, through `ElixirScope.Foundation.Telemetry.emit_gauge/3`
  (only when that module is available):

    * name: `[:foundation, :operations, :duration]`
    * value: the operation duration in milliseconds (`now - start_time`)
    * metadata: `%{module: module, function: function, correlation_id: id}`

  When `fun` raises, `ElixirScope.Foundation.Error.collect_error_metrics/1`
  emits `[:foundation, :errors, :system, :runtime]` instead.

  ## Units

  `start_time` and breadcrumb timestamps are `System.monotonic_time(:millisecond)`.
  The `duration_ns` field of `operation_context` maps keeps its original name
  but holds **milliseconds**, as in the original.
  """

  alias ElixirScope.Foundation.{Error, Utils}

  @enforce_keys [:operation_id, :module, :function, :correlation_id, :start_time]
  defstruct [
    :operation_id,
    :module,
    :function,
    :correlation_id,
    :start_time,
    metadata: %{},
    breadcrumbs: [],
    parent_context: nil
  ]

  @typedoc "One step of an operation: `module.function` at a monotonic millisecond time."
  @type breadcrumb :: %{
          module: module(),
          function: atom(),
          timestamp: integer(),
          metadata: map()
        }

  @typedoc "The summary of a context embedded in error contexts under `:operation_context`."
  @type operation_context :: %{
          required(:operation_id) => pos_integer(),
          required(:correlation_id) => String.t(),
          required(:breadcrumbs) => [breadcrumb()],
          required(:duration_ns) => integer(),
          optional(:metadata) => map()
        }

  @type t :: %__MODULE__{
          operation_id: pos_integer(),
          module: module(),
          function: atom(),
          correlation_id: String.t(),
          start_time: integer(),
          metadata: map(),
          breadcrumbs: [breadcrumb()],
          parent_context: t() | nil
        }

  @pdict_key :error_context

  @doc """
  A new context for `module.function`, with one initial breadcrumb.

  Options:

    * `:correlation_id` - correlation id to use (default: a new UUID)
    * `:metadata` - initial metadata map (default `%{}`)
    * `:parent_context` - the parent context (default `nil`)

  Unknown options or a list that is not a keyword list raise `ArgumentError`; a non-list `opts` raises
  `FunctionClauseError`.

      iex> ctx = ElixirScope.Foundation.ErrorContext.new(MyApp.Users, :register, metadata: %{user: 1})
      iex> {ctx.module, ctx.function, ctx.metadata, length(ctx.breadcrumbs)}
      {MyApp.Users, :register, %{user: 1}, 1}
  """
  @spec new(module(), atom(), keyword()) :: t()
  def new(module, function, opts \\ []) when is_list(opts) do
    Keyword.keyword?(opts) ||
      raise ArgumentError, "expected a keyword list, got: #{inspect(opts)}"

    now = Utils.monotonic_timestamp()

    %__MODULE__{
      operation_id: Utils.generate_id(),
      module: module,
      function: function,
      correlation_id: opts[:correlation_id] || Utils.generate_correlation_id(),
      start_time: now,
      metadata: opts[:metadata] || %{},
      breadcrumbs: [crumb(module, function, %{}, now)],
      parent_context: opts[:parent_context]
    }
  end

  @doc """
  A child of `parent` for `module.function`: new operation id, the parent's
  correlation id, the parent's metadata merged with `metadata`, the parent's
  breadcrumbs plus one for this step, and `parent_context: parent`.

      iex> parent = ElixirScope.Foundation.ErrorContext.new(A, :a, metadata: %{x: 1})
      iex> child = ElixirScope.Foundation.ErrorContext.child_context(parent, B, :b, %{y: 2})
      iex> {child.correlation_id == parent.correlation_id, child.metadata, length(child.breadcrumbs)}
      {true, %{x: 1, y: 2}, 2}
  """
  @spec child_context(t(), module(), atom(), map()) :: t()
  def child_context(%__MODULE__{} = parent, module, function, metadata \\ %{})
      when is_map(metadata) do
    now = Utils.monotonic_timestamp()

    %__MODULE__{
      operation_id: Utils.generate_id(),
      module: module,
      function: function,
      correlation_id: parent.correlation_id,
      start_time: now,
      metadata: Map.merge(parent.metadata, metadata),
      breadcrumbs: parent.breadcrumbs ++ [crumb(module, function, metadata, now)],
      parent_context: parent
    }
  end

  @doc "Appends a breadcrumb for `module.function` (with `metadata`) to the context's trail."
  @spec add_breadcrumb(t(), module(), atom(), map()) :: t()
  def add_breadcrumb(%__MODULE__{} = context, module, function, metadata \\ %{})
      when is_map(metadata) do
    crumb = crumb(module, function, metadata, Utils.monotonic_timestamp())
    %{context | breadcrumbs: context.breadcrumbs ++ [crumb]}
  end

  @doc "Merges `metadata` into the context's metadata."
  @spec add_metadata(t(), map()) :: t()
  def add_metadata(%__MODULE__{} = context, metadata) when is_map(metadata) do
    %{context | metadata: Map.merge(context.metadata, metadata)}
  end

  @doc """
  Runs `fun` with `context` stored in the process dictionary under
  `:error_context`.

  On success the key is deleted, the duration gauge is emitted (see the
  module doc) and `fun`'s result is returned unchanged (`{:error, :x}` stays
  `{:error, :x}`). When `fun` raises, the key is deleted and
  `{:error, %Error{error_type: :internal_error}}` is returned; its message is
  `"Exception in operation: <exception message>"` and its context holds
  `exception_type`, `exception_message` and `operation_context`. `throw` and
  `exit` propagate and leave the key set. A previously stored context is not
  restored (no nesting): use `run/2` for that.

      iex> ctx = ElixirScope.Foundation.ErrorContext.new(Demo, :op)
      iex> ElixirScope.Foundation.ErrorContext.with_context(ctx, fn -> {:ok, 42} end)
      {:ok, 42}
  """
  @spec with_context(t(), (() -> result)) :: result | {:error, Error.t()} when result: term()
  def with_context(%__MODULE__{} = context, fun) when is_function(fun, 0) do
    Process.put(@pdict_key, context)

    try do
      fun.()
    rescue
      exception ->
        error = exception_error(exception, __STACKTRACE__, context)
        Process.delete(@pdict_key)
        Error.collect_error_metrics(error)
        {:error, error}
    else
      result ->
        Process.delete(@pdict_key)
        emit_duration(context)
        result
    end
  end

  @doc """
  Like `with_context/2` but explicit: calls `fun.(context)` and never reads
  or writes the process dictionary. Returns `fun`'s result unchanged, or the
  same `{:error, %Error{error_type: :internal_error}}` as `with_context/2`
  when `fun` raises; `throw` and `exit` propagate. Emits the same telemetry.

      iex> ctx = ElixirScope.Foundation.ErrorContext.new(Demo, :op)
      iex> ElixirScope.Foundation.ErrorContext.run(ctx, fn c -> {:ok, c.function} end)
      {:ok, :op}
      iex> {:error, e} = ElixirScope.Foundation.ErrorContext.run(ctx, fn _ -> raise "boom" end)
      iex> {e.error_type, e.message}
      {:internal_error, "Exception in operation: boom"}
  """
  @spec run(t(), (t() -> result)) :: result | {:error, Error.t()} when result: term()
  def run(%__MODULE__{} = context, fun) when is_function(fun, 1) do
    fun.(context)
  rescue
    exception ->
      error = exception_error(exception, __STACKTRACE__, context)
      Error.collect_error_metrics(error)
      {:error, error}
  else
    result ->
      emit_duration(context)
      result
  end

  @doc """
  Attaches the context to an error.

    * `%Error{}`: `context` gains `:operation_context` (with metadata) and
      `correlation_id` is kept, or taken from the context when `nil`;
    * `{:error, %Error{}}`: the same, inside the tuple;
    * `{:error, reason}` (any other reason, including a
      `%ElixirScope.Foundation.Types.Error{}`): a new `:external_error`
      (code 9999) "External operation failed" whose context holds
      `original_reason` and `operation_context` (without metadata), with the
      context's correlation id;
    * anything else is returned unchanged.
  """
  @spec enhance_error(Error.t() | {:error, term()} | other, t()) ::
          Error.t() | {:error, Error.t()} | other
        when other: term()
  def enhance_error(%Error{} = error, %__MODULE__{} = context) do
    %{
      error
      | context: Map.merge(error.context || %{}, %{operation_context: summary(context)}),
        correlation_id: error.correlation_id || context.correlation_id
    }
  end

  def enhance_error({:error, %Error{} = error}, %__MODULE__{} = context) do
    {:error, enhance_error(error, context)}
  end

  def enhance_error({:error, reason}, %__MODULE__{} = context) do
    operation_context = Map.delete(summary(context), :metadata)

    {:error,
     Error.new(:external_error, "External operation failed",
       context: %{original_reason: reason, operation_context: operation_context},
       correlation_id: context.correlation_id
     )}
  end

  def enhance_error(result, _context), do: result

  @doc "The context stored by `with_context/2` in this process, or `nil`."
  @spec get_current_context() :: t() | nil
  def get_current_context, do: Process.get(@pdict_key)

  @doc """
  The breadcrumbs as `"Elixir.Mod.fun (<age> ago) -> ..."`, where the age is
  the elapsed milliseconds formatted by `Utils.format_duration/1` (which
  reads nanoseconds; kept from the original). `""` when there are none.
  Module or function terms that cannot be turned into a string are shown
  with `inspect/1`.

      iex> ctx = ElixirScope.Foundation.ErrorContext.new(Demo, :op)
      iex> ElixirScope.Foundation.ErrorContext.format_breadcrumbs(ctx) =~ ~r/^Elixir\\.Demo\\.op \\(\\d+ns ago\\)$/
      true
  """
  @spec format_breadcrumbs(t()) :: String.t()
  def format_breadcrumbs(%__MODULE__{breadcrumbs: breadcrumbs}) do
    now = Utils.monotonic_timestamp()

    Enum.map_join(breadcrumbs, " -> ", fn crumb ->
      age = Utils.format_duration(max(now - crumb.timestamp, 0))
      "#{label(crumb.module)}.#{label(crumb.function)} (#{age} ago)"
    end)
  end

  # Atoms and strings interpolate as in the original ("Elixir.Foo"); terms
  # without a String.Chars implementation fall back to inspect instead of raising.
  defp label(term) do
    String.Chars.to_string(term)
  rescue
    _ -> inspect(term)
  end

  @doc "Milliseconds elapsed since the context was created."
  @spec get_operation_duration(t()) :: integer()
  def get_operation_duration(%__MODULE__{start_time: start_time}) do
    Utils.monotonic_timestamp() - start_time
  end

  @doc """
  Adds context to a result.

    * `:ok` and `{:ok, _}` are returned unchanged;
    * `{:error, %Error{}}` with an `%ErrorContext{}`: `enhance_error/2`, then
      `additional_info` merged into the error context;
    * `{:error, %Error{}}` with a plain map: the map and `additional_info`
      merged into the error context;
    * `{:error, reason}` with an `%ErrorContext{}`: a new `:external_error`
      whose context is `additional_info` plus `original_reason` and
      `operation_context` (correlation id **not** set, as in the original);
    * `{:error, reason}` with a map: a new `:external_error` whose context is
      the map, `additional_info` and `original_reason`.

  Any other combination raises `FunctionClauseError`.

      iex> {:error, e} = ElixirScope.Foundation.ErrorContext.add_context({:error, :boom}, %{step: 1})
      iex> {e.error_type, e.code, e.context}
      {:external_error, 9999, %{step: 1, original_reason: :boom}}
  """
  @spec add_context(:ok, t() | map(), map()) :: :ok
  @spec add_context({:ok, value}, t() | map(), map()) :: {:ok, value} when value: term()
  @spec add_context({:error, term()}, t() | map(), map()) :: {:error, Error.t()}
  def add_context(result, context, additional_info \\ %{})
  def add_context(:ok, _context, _info), do: :ok
  def add_context({:ok, _} = result, _context, _info), do: result

  def add_context({:error, %Error{} = error}, %__MODULE__{} = context, info) when is_map(info) do
    enhanced = enhance_error(error, context)
    {:error, %{enhanced | context: Map.merge(enhanced.context, info)}}
  end

  def add_context({:error, %Error{} = error}, context, info)
      when is_map(context) and is_map(info) do
    {:error, %{error | context: Map.merge(error.context || %{}, Map.merge(context, info))}}
  end

  def add_context({:error, reason}, %__MODULE__{} = context, info) when is_map(info) do
    extra = %{original_reason: reason, operation_context: summary(context)}
    {:error, external_error(Map.merge(info, extra))}
  end

  def add_context({:error, reason}, context, info) when is_map(context) and is_map(info) do
    {:error, external_error(Map.merge(context, Map.merge(info, %{original_reason: reason})))}
  end

  defp external_error(context) do
    Error.new(:external_error, "External operation failed", context: context)
  end

  defp crumb(module, function, metadata, timestamp) do
    %{module: module, function: function, timestamp: timestamp, metadata: metadata}
  end

  defp summary(context) do
    %{
      operation_id: context.operation_id,
      correlation_id: context.correlation_id,
      breadcrumbs: context.breadcrumbs,
      duration_ns: get_operation_duration(context),
      metadata: context.metadata
    }
  end

  defp exception_error(exception, stacktrace, context) do
    message = Exception.message(exception)

    error =
      Error.new(:internal_error, "Exception in operation: #{message}",
        context: %{
          exception_type: exception.__struct__,
          exception_message: message,
          operation_context: summary(context)
        },
        correlation_id: context.correlation_id,
        stacktrace: stacktrace
      )

    # The original pre-formatted frames to maps that Error.new/3 then stored
    # as their inspect strings: keep that shape (a list of strings).
    %{error | stacktrace: Enum.map(error.stacktrace, &frame_string/1)}
  end

  defp frame_string(frame) when is_map(frame), do: inspect(frame)
  defp frame_string(frame), do: frame

  defp emit_duration(context) do
    metadata = %{
      module: context.module,
      function: context.function,
      correlation_id: context.correlation_id
    }

    ElixirScope.Foundation.Telemetry.emit_gauge(
      [:foundation, :operations, :duration],
      get_operation_duration(context),
      metadata
    )
  end
end
