defmodule ElixirScope.Foundation.Contracts.Configurable do
  @moduledoc """
  Behaviour of a configuration provider: read, update, validate and reset the
  `ElixirScope.Foundation.Types.Config` tree.

  Implemented by `ElixirScope.Foundation.Services.ConfigServer` and the
  `ElixirScope.Foundation.Config` facade. Errors are
  `%ElixirScope.Foundation.Types.Error{}`.
  """

  alias ElixirScope.Foundation.Types.{Config, Error}

  @typedoc "A path into the configuration tree, e.g. `[:ai, :planning, :sampling_rate]`."
  @type config_path :: [atom()]

  @doc "Returns the whole current configuration."
  @callback get() :: {:ok, Config.t()} | {:error, Error.t()}

  @doc "Returns the value at `path` (`[]` is the whole configuration)."
  @callback get(path :: config_path()) :: {:ok, term()} | {:error, Error.t()}

  @doc "Sets the value at an updatable `path`, after validating the resulting configuration."
  @callback update(path :: config_path(), value :: term()) :: :ok | {:error, Error.t()}

  @doc "Validates a configuration."
  @callback validate(config :: Config.t()) :: :ok | {:error, Error.t()}

  @doc "The paths `update/2` accepts."
  @callback updatable_paths() :: [config_path()]

  @doc "Restores the default configuration."
  @callback reset() :: :ok | {:error, Error.t()}

  @doc "True when the configuration service is running."
  @callback available?() :: boolean()
end
