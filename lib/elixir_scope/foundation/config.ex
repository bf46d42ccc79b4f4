defmodule ElixirScope.Foundation.Config do
  @moduledoc """
  Public facade of the configuration service
  (`ElixirScope.Foundation.Services.ConfigServer`).

  Reads (`get/0,1,2`, `get_with_default/2,3`) are served from the published
  config in the caller's process; updates go through the server.

  ## Namespaces

  Every function that reaches the service also takes a trailing `opts`
  keyword list with `namespace:` (`get(path, opts)`, `update(path, value,
  opts)`, `status(opts)`, ...). Without it, the namespace is the caller's
  sandbox (`ElixirScope.Foundation.Sandbox`), else `:production`.
  """
  @behaviour ElixirScope.Foundation.Contracts.Configurable

  alias ElixirScope.Foundation.{Cluster, Error}
  alias ElixirScope.Foundation.Services.ConfigServer
  alias ElixirScope.Foundation.Types

  @forbidden_paths [
    [:ai, :api_key],
    [:storage, :encryption_key],
    [:security],
    [:system, :node_name]
  ]

  @typedoc "Options: `namespace:` (see the moduledoc)."
  @type opts :: [namespace: ElixirScope.Foundation.ProcessRegistry.namespace()]

  @doc """
  Ensures the configuration service runs (see `ConfigServer.initialize/1`);
  `opts` may name the `namespace:`.
  """
  @spec initialize(keyword()) :: :ok | {:error, Types.Error.t()}
  def initialize(opts \\ []), do: ConfigServer.initialize(opts)

  @doc "The configuration service's status map (`status(namespace: ns)` for another namespace)."
  @spec status(opts()) :: {:ok, map()} | {:error, Types.Error.t()}
  def status(opts \\ []), do: ConfigServer.status(opts)

  @impl true
  @doc "The whole configuration."
  @spec get() :: {:ok, Types.Config.t()} | {:error, Types.Error.t()}
  def get, do: ConfigServer.get([], [])

  @impl true
  @doc "The value at `path` (`[]` for the whole configuration)."
  @spec get([atom()]) :: {:ok, term()} | {:error, Types.Error.t()}
  def get(path) when is_list(path), do: ConfigServer.get(path, [])

  @doc "`get/1` with options: `get(path, namespace: ns)`."
  @spec get([atom()], opts()) :: {:ok, term()} | {:error, Types.Error.t()}
  def get(path, opts) when is_list(path) and is_list(opts), do: ConfigServer.get(path, opts)

  @doc "The value at `path`, or `default` on any error; `opts` may name the `namespace:`."
  @spec get_with_default([atom()], term(), opts()) :: term()
  def get_with_default(path, default, opts \\ []) do
    case ConfigServer.get(path, opts) do
      {:ok, value} -> value
      {:error, _} -> default
    end
  end

  @impl true
  @doc "Updates `path` (see `ConfigServer.update/3`)."
  @spec update([atom()], term()) :: :ok | {:error, Types.Error.t()}
  def update(path, value), do: ConfigServer.update(path, value, [])

  @doc """
  `update/2` with options: `namespace: ns` names the instance; `scope:
  :cluster` (and `timeout: ms`) validates
  the update locally, then applies it on every node of the cluster: `:ok`,
  `{:partial, failed}` or the validation error (see
  `ElixirScope.Foundation.Cluster` for ordering and the absence of
  rollback).
  """
  @spec update([atom()], term(), Cluster.opts()) ::
          :ok | {:partial, Cluster.failed()} | {:error, Types.Error.t()}
  def update(path, value, opts) do
    case Cluster.scope(opts) do
      :cluster -> Cluster.update_config(path, value, opts)
      {:local, opts} -> ConfigServer.update(path, value, opts)
      error -> error
    end
  end

  @doc """
  `update/2` with extra guards: a non-list path gives
  `{:error, %ElixirScope.Foundation.Error{error_type: :invalid_path}}`; the
  sensitive paths `#{inspect(@forbidden_paths)}` give
  `{:error, %ElixirScope.Foundation.Error{error_type: :config_update_forbidden}}`.
  `opts` may name the `namespace:`.
  """
  @spec safe_update(term(), term(), opts()) ::
          :ok | {:error, Types.Error.t()} | {:error, Error.t()}
  def safe_update(path, value, opts \\ [])

  def safe_update(path, _value, _opts) when not is_list(path),
    do: {:error, Error.new(:invalid_path, "Invalid configuration path")}

  def safe_update(path, _value, _opts) when path in @forbidden_paths,
    do: {:error, Error.new(:config_update_forbidden, "Configuration path update forbidden")}

  def safe_update(path, value, opts), do: update(path, value, opts)

  @impl true
  @doc "Validates a config struct."
  @spec validate(Types.Config.t()) :: :ok | {:error, Types.Error.t()}
  def validate(config), do: ConfigServer.validate(config)

  @impl true
  @doc "The paths that can be updated at runtime."
  @spec updatable_paths() :: [[atom()]]
  def updatable_paths, do: ConfigServer.updatable_paths()

  @impl true
  @doc """
  Resets the configuration to the defaults (see `ConfigServer.reset/1`);
  `opts` may name the `namespace:`.
  """
  @spec reset(opts()) :: :ok | {:error, Types.Error.t()}
  def reset(opts \\ []), do: ConfigServer.reset(opts)

  @impl true
  @doc "Whether the configuration service is registered; `opts` may name the `namespace:`."
  @spec available?(opts()) :: boolean()
  def available?(opts \\ []), do: ConfigServer.available?(opts)

  @doc """
  Subscribes the caller to `{:config_notification, _}` messages of its
  namespace (or of `opts[:namespace]`).
  """
  @spec subscribe(opts()) :: :ok | {:error, Types.Error.t()}
  def subscribe(opts \\ []), do: ConfigServer.subscribe(self(), opts)

  @doc "Unsubscribes the caller; `opts` may name the `namespace:`."
  @spec unsubscribe(opts()) :: :ok | {:error, Types.Error.t()}
  def unsubscribe(opts \\ []), do: ConfigServer.unsubscribe(self(), opts)
end
