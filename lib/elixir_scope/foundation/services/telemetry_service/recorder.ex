defmodule ElixirScope.Foundation.Services.TelemetryService.Recorder do
  @moduledoc false
  # The caller-side half of TelemetryService: finds a namespace's metrics
  # handle (in `:persistent_term` for `:production`, in the handle table of
  # `Services.Handles` for `{:test, ref}` namespaces) and records an event into it with one NIF
  # call, then runs the default handler when one is attached to the name.
  # Runs in whichever process emits: never through the service's mailbox,
  # never through ServiceRegistry/ProcessRegistry (ServiceRegistry itself
  # emits through here). The record functions never raise and return `:ok`.
  #
  # The namespace of a call without `namespace:` is the caller's sandbox, else
  # `:production` (`Sandbox.namespace/1`).
  #
  # A namespace's entry is `{handle, owner_pid}`, written only by the
  # service process (`attach/2`, `release/1`); the handle is live while the
  # owner is. The handle knows it too (`Native.metrics_own/1`: the VM
  # monitors the owner for it), so the counter hot path asks the NIF instead
  # of `Process.alive?/1`.

  require Logger

  alias ElixirScope.Foundation.{Native, Sandbox}
  alias ElixirScope.Foundation.Native.Route
  alias ElixirScope.Foundation.Services.{Handles, TelemetryService}
  alias ElixirScope.Foundation.Services.TelemetryService.Forward

  # The counter hot path is a few calls deep; these are folded into it.
  @compile {:inline, namespace: 1, key: 1, entry: 1, lookup: 1, forward_counter: 3}

  @doc """
  The namespace of `opts` (`Sandbox.namespace/1`); no `Keyword.validate!/2`
  cost for the common `[]` and `[namespace: ns]`.
  """
  def namespace([]), do: Sandbox.current()
  def namespace(namespace: namespace), do: namespace
  def namespace(opts), do: Sandbox.namespace(Keyword.validate!(opts, [:namespace]))

  # An atom for the common namespace: persistent_term hashes an atom key in
  # one step, a tuple element by element (this lookup is on every emit).
  @doc false
  def key(:production), do: :elixir_scope_foundation_telemetry_production
  def key(namespace), do: {TelemetryService, namespace}

  @doc "`{handle, owner_pid}` or nil."
  def entry(:production), do: :persistent_term.get(key(:production), nil)
  def entry(namespace), do: Handles.get(key(namespace))

  defp publish(:production, entry), do: :persistent_term.put(key(:production), entry)
  defp publish(namespace, entry), do: Handles.put(key(namespace), entry)

  @doc "`{:ok, handle}` while the owning service process lives, else `:error`."
  def live_handle(namespace) do
    case entry(namespace) do
      {handle, pid} -> if Process.alive?(pid), do: {:ok, handle}, else: :error
      nil -> :error
    end
  end

  @doc """
  Makes the calling (service) process the owner of the namespace's handle
  and returns it. Reuses the handle when one exists (a restart), so no
  metric is lost when the service process dies.
  """
  def attach(namespace, max_metrics) do
    handle =
      case entry(namespace) do
        {handle, _old_pid} -> handle
        nil -> Native.metrics_new(max_metrics)
      end

    # A caller that finds the handle may skip the forward's load check.
    Forward.try_load()
    Native.metrics_own(handle)
    publish(namespace, {handle, self()})
    handle
  end

  @doc "Drops the namespace's entry if the calling process owns it."
  def release(namespace) do
    case entry(namespace) do
      {_handle, pid} = entry when pid == self() -> unpublish(namespace, entry)
      _ -> false
    end
  end

  defp unpublish(:production, _entry), do: :persistent_term.erase(key(:production))
  defp unpublish(namespace, entry), do: Handles.delete(key(namespace), entry)

  @doc "Records an event in the namespace of `opts` (nothing when no service runs there)."
  def record(opts, name, measurements, metadata) do
    safely(fn ->
      with true <- is_list(name) and is_map(measurements),
           {:ok, handle} <- live_handle(namespace(opts)) do
        record_into(handle, name, measurements, metadata)
      end
    end)
  end

  @doc "Records an event into `handle`."
  def record_into(handle, name, measurements, metadata) do
    safely(fn ->
      now = System.monotonic_time()

      case native_record(handle, name, measurements, metadata, now) do
        {:ok, true} -> run_handler(name, measurements, metadata)
        _ -> :ok
      end
    end)
  end

  @doc """
  Records a counter of `value` in the namespace of `opts` and forwards it
  to `:telemetry` (`TelemetryService.emit_counter/4`). Always `:ok`.
  """
  def count(opts, name, value, metadata) when is_list(name) do
    case lookup(opts) do
      {handle, _owner} = entry ->
        finish_count(entry, Native.metrics_add_cached(handle, name, value), name, value, metadata)

      nil ->
        Forward.execute(name, %{counter: value}, metadata)
    end
  catch
    _kind, _reason -> :ok
  end

  # Not a name: nothing to record, and no namespace to look up (hostile
  # options may make that lookup costly).
  def count(_opts, name, value, metadata),
    do: Forward.execute(name, %{counter: value}, metadata)

  @doc """
  Counts two counters of value 1 (`{name, metadata}` each) in `namespace`
  with one NIF call: as two `count/4` calls, in order. Always `:ok`.
  """
  def count_pair(namespace, {name_a, meta_a}, {name_b, meta_b}) do
    case entry(namespace) do
      {handle, _owner} = entry ->
        {a, b} =
          case Native.metrics_add_cached_pair(handle, name_a, name_b) do
            :ok -> {:ok, :ok}
            outcomes -> outcomes
          end

        finish_count(entry, a, name_a, 1, meta_a)
        finish_count(entry, b, name_b, 1, meta_b)

      nil ->
        Forward.execute(name_a, %{counter: 1}, meta_a)
        Forward.execute(name_b, %{counter: 1}, meta_b)
    end

    :ok
  catch
    _kind, _reason -> :ok
  end

  @doc """
  Finishes a counter whose cached NIF count (`Native.metrics_add_cached/3`
  or a write that counts itself) answered `outcome` in the handle of
  `entry`: forwards it to `:telemetry`, runs the attached handler
  (`:handler`), or counts it the slow way (`:miss`). Always `:ok`.
  """
  def finish_count(entry, outcome, name, value, metadata) do
    case outcome do
      :ok ->
        forward_counter(name, value, metadata)

      :handler ->
        run_handler(name, %{counter: value}, metadata)
        forward_counter(name, value, metadata)

      :miss ->
        count_miss(entry, name, value, metadata)
    end

    :ok
  catch
    _kind, _reason -> :ok
  end

  # The namespace's entry, or nil (also for options that are not valid).
  defp lookup(opts) do
    entry(namespace(opts))
  catch
    _kind, _reason -> nil
  end

  # A live handle was found, so its service tried the `:telemetry` load
  # before publishing it: only the code tables are read. A module that is
  # not loaded cannot export `execute/3`; `counter_tried/3` checks the export.
  defp forward_counter(name, value, metadata) do
    if :erlang.module_loaded(:telemetry),
      do: Forward.counter_tried(name, value, metadata),
      else: :ok
  end

  # The hot path (`Native.metrics_add_cached/3`: a name this scheduler
  # counted before, one NIF call that checks the handle's owner and reads
  # the clock itself) did nothing: a new name, another value, or no live
  # owner.
  defp count_miss({handle, pid}, name, value, metadata) do
    if Process.alive?(pid) do
      counter_miss(handle, name, value, metadata)
      forward_counter(name, value, metadata)
    else
      Forward.execute(name, %{counter: value}, metadata)
    end
  end

  defp counter_miss(handle, name, value, metadata) do
    case native_counter(handle, name, value, metadata) do
      :handler -> run_handler(name, %{counter: value}, metadata)
      _ -> :ok
    end
  catch
    _kind, _reason -> :ok
  end

  # The normal-scheduler NIFs answer :dirty, having done nothing, when the
  # measurements/value or a new name's metadata are too big for a normal
  # scheduler (native/foundation_nif/src/budget.rs); the dirty twin then
  # records it.
  defp native_record(handle, name, measurements, metadata, now) do
    handle
    |> Native.metrics_record(name, measurements, metadata, now)
    |> Route.dirty(fn ->
      Native.metrics_record_dirty(handle, name, measurements, metadata, now)
    end)
  end

  defp native_counter(handle, name, value, metadata) do
    handle
    |> Native.metrics_emit_counter_now(name, value, metadata)
    |> Route.dirty(fn ->
      now = System.monotonic_time()

      case Native.metrics_emit_counter_dirty(handle, name, value, metadata, now) do
        {:ok, true} -> :handler
        other -> other
      end
    end)
  end

  # The default handler of attach_handlers/2.
  defp run_handler(name, measurements, metadata) do
    Logger.debug(fn ->
      "Telemetry event #{inspect(name)}: #{inspect(measurements)} #{inspect(metadata)}"
    end)
  rescue
    exception -> Logger.warning("Telemetry handler failed: #{Exception.message(exception)}")
  end

  # `catch` also takes raises (kind :error).
  defp safely(fun) do
    fun.()
    :ok
  catch
    _kind, _reason -> :ok
  end
end
