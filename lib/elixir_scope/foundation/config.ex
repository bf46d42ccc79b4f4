defmodule ElixirScope.Foundation.Config do
  @moduledoc """
  Public facade of the configuration service
  (`ElixirScope.Foundation.Services.ConfigServer`).

  Reads (`get/0,1`, `get_with_default/2`) are served from the published config
  in the caller's process; updates go through the server. Every function
  targets the `:production` instance; `ConfigServer` takes a `namespace:`
  option for isolated instances.
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

  @doc "Ensures the configuration service runs (see `ConfigServer.initialize/1`)."
  @spec initialize(keyword()) :: :ok | {:error, Types.Error.t()}
  def initialize(opts \\ []), do: ConfigServer.initialize(opts)

  @doc "The configuration service's status map."
  @spec status() :: {:ok, map()} | {:error, Types.Error.t()}
  def status, do: ConfigServer.status()

  @impl true
  @doc "The whole configuration."
  @spec get() :: {:ok, Types.Config.t()} | {:error, Types.Error.t()}
  def get, do: ConfigServer.get([], [])

  @impl true
  @doc "The value at `path`."
  @spec get([atom()]) :: {:ok, term()} | {:error, Types.Error.t()}
  def get(path) when is_list(path), do: ConfigServer.get(path, [])

  @doc "The value at `path`, or `default` on any error."
  @spec get_with_default([atom()], term()) :: term()
  def get_with_default(path, default) do
    case get(path) do
      {:ok, value} -> value
      {:error, _} -> default
    end
  end

  @impl true
  @doc "Updates `path` (see `ConfigServer.update/3`)."
  @spec update([atom()], term()) :: :ok | {:error, Types.Error.t()}
  def update(path, value), do: ConfigServer.update(path, value)

  @doc """
  `update/2` with options. `scope: :cluster` (and `timeout: ms`) validates
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
  """
  @spec safe_update(term(), term()) ::
          :ok | {:error, Types.Error.t()} | {:error, Error.t()}
  def safe_update(path, _value) when not is_list(path),
    do: {:error, Error.new(:invalid_path, "Invalid configuration path")}

  def safe_update(path, _value) when path in @forbidden_paths,
    do: {:error, Error.new(:config_update_forbidden, "Configuration path update forbidden")}

  def safe_update(path, value), do: update(path, value)

  @impl true
  @doc "Validates a config struct."
  @spec validate(Types.Config.t()) :: :ok | {:error, Types.Error.t()}
  def validate(config), do: ConfigServer.validate(config)

  @impl true
  @doc "The paths that can be updated at runtime."
  @spec updatable_paths() :: [[atom()]]
  def updatable_paths, do: ConfigServer.updatable_paths()

  @impl true
  @doc "Resets the configuration to the defaults (see `ConfigServer.reset/1`)."
  @spec reset() :: :ok | {:error, Types.Error.t()}
  def reset, do: ConfigServer.reset()

  @impl true
  @doc "Whether the configuration service is registered."
  @spec available?() :: boolean()
  def available?, do: ConfigServer.available?()

  @doc "Subscribes the caller to `{:config_notification, _}` messages."
  @spec subscribe() :: :ok | {:error, Types.Error.t()}
  def subscribe, do: ConfigServer.subscribe(self())

  @doc "Unsubscribes the caller."
  @spec unsubscribe() :: :ok | {:error, Types.Error.t()}
  def unsubscribe, do: ConfigServer.unsubscribe(self())
end
