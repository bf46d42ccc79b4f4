defmodule ElixirScope.Foundation.Contracts.EventStore do
  @moduledoc """
  Behaviour of an event store: store, fetch, query and prune
  `ElixirScope.Foundation.Types.Event`s.

  Implemented by `ElixirScope.Foundation.Services.EventStore` and the
  `ElixirScope.Foundation.Events` facade. Errors are
  `%ElixirScope.Foundation.Types.Error{}`.
  """

  alias ElixirScope.Foundation.Types.{Error, Event}

  @typedoc "An event identifier."
  @type event_id :: pos_integer()

  @typedoc """
  Query filters: `:event_type`, `:time_range` (`{start, stop}`, inclusive),
  `:order_by` (`:event_id` or `:timestamp`), `:offset`, `:limit`; other keys
  are ignored.
  """
  @type event_query :: map()

  @doc "Stores one event and returns its id."
  @callback store(event :: Event.t()) :: {:ok, event_id()} | {:error, Error.t()}

  @doc "Stores events atomically (all or none) and returns their ids in input order."
  @callback store_batch(events :: [Event.t()]) :: {:ok, [event_id()]} | {:error, Error.t()}

  @doc "Fetches one event by id."
  @callback get(event_id :: event_id()) :: {:ok, Event.t()} | {:error, Error.t()}

  @doc "Returns the events matching `query`."
  @callback query(query :: event_query()) :: {:ok, [Event.t()]} | {:error, Error.t()}

  @doc "Returns the events with `correlation_id`, oldest first."
  @callback get_by_correlation(correlation_id :: String.t()) ::
              {:ok, [Event.t()]} | {:error, Error.t()}

  @doc "Deletes events whose timestamp is strictly before `timestamp`; returns how many."
  @callback prune_before(timestamp :: integer()) ::
              {:ok, non_neg_integer()} | {:error, Error.t()}

  @doc "Storage statistics."
  @callback stats() :: {:ok, map()} | {:error, Error.t()}

  @doc "True when the store is running."
  @callback available?() :: boolean()

  @doc "Starts the store if it is not running."
  @callback initialize() :: :ok | {:error, Error.t()}

  @doc "Status map of the store (`status: :running`, ...)."
  @callback status() :: {:ok, map()} | {:error, Error.t()}
end
