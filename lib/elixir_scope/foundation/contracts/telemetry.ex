defmodule ElixirScope.Foundation.Contracts.Telemetry do
  @moduledoc """
  Behaviour of a telemetry service: record events, counters and gauges, and
  read the collected metrics.

  Implemented by `ElixirScope.Foundation.Services.TelemetryService` (the
  `ElixirScope.Foundation.Telemetry` facade does not declare it). Errors are
  `%ElixirScope.Foundation.Types.Error{}`.
  """

  alias ElixirScope.Foundation.Types.Error

  @typedoc "A telemetry event name, e.g. `[:foundation, :config_updates]`."
  @type event_name :: [atom()]

  @typedoc "Measurements of an event."
  @type measurements :: map()

  @typedoc "Metadata of an event."
  @type metadata :: map()

  @doc "Records an event with its measurements and metadata."
  @callback execute(event_name(), measurements(), metadata()) :: :ok

  @doc "Runs `fun`, records its duration under `event_name ++ [:stop]` and returns its result."
  @callback measure(event_name(), metadata(), (() -> result)) :: result when result: term()

  @doc "Increments the counter `event_name` by one."
  @callback emit_counter(event_name(), metadata()) :: :ok

  @doc "Sets the gauge `event_name` to `value`."
  @callback emit_gauge(event_name(), value :: number(), metadata()) :: :ok

  @doc "All collected metrics as a nested map."
  @callback get_metrics() :: {:ok, map()} | {:error, Error.t()}

  @doc "Attaches the default handlers to the given event names."
  @callback attach_handlers([event_name()]) :: :ok | {:error, Error.t()}

  @doc "Detaches the handlers of the given event names."
  @callback detach_handlers([event_name()]) :: :ok

  @doc "True when the telemetry service is running."
  @callback available?() :: boolean()

  @doc "Starts the telemetry service if it is not running."
  @callback initialize() :: :ok | {:error, Error.t()}

  @doc "Status map of the service (`status: :running`, ...)."
  @callback status() :: {:ok, map()} | {:error, Error.t()}
end
