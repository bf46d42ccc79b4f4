# How single-event writes scale from 1 to 8 processes on this machine, in
# one VM: the rate of 8 processes over 1 process for `Events.store/1`, for
# the store NIF alone, for the original design's `store` (its model in
# bench/support/original.exs), for a raw ETS insert of the event from the
# caller (a public set with write concurrency: no validation, no index),
# for building the event only (what the VM gives to work that shares
# nothing), and for `EventStore.store/2` into a store held at its
# `max_events` (every write evicts the oldest event). A second table gives
# each case's rate over the original's.
#
#   MIX_ENV=prod mix run bench/write_scaling.exs      # ~30 s; ROUNDS=n (12)
#
# Each round restarts both stores with the drop-in workload's 50 000 events,
# then runs every case in a random order (16 000 writes each); the table
# shows the medians over the rounds, and the median of the rounds' own
# 8-over-1 ratios.
Code.require_file("support/harness.exs", __DIR__)
Code.require_file("support/workload.exs", __DIR__)
Code.require_file("../test/support/validation_reference.ex", __DIR__)
Code.require_file("support/reference_event_store.exs", __DIR__)
Code.require_file("support/original.exs", __DIR__)

defmodule Bench.WriteScaling do
  alias Bench.{Harness, Original}
  alias ElixirScope.Foundation.{Events, Native}
  alias ElixirScope.Foundation.Services.EventStore
  alias ElixirScope.Foundation.Services.EventStore.Support

  import Bench.Workload, only: [event: 1, scale: 1]

  @fill 50_000

  def run do
    rounds = String.to_integer(System.get_env("ROUNDS", "12"))
    results = Enum.reduce(1..rounds, %{}, fn _, acc -> round_into(acc) end)
    median = fn list -> Enum.at(Enum.sort(list), div(length(list), 2)) end

    rows =
      for {label, key} <- cases() do
        {ones, eights} = Enum.unzip(results[key])
        ratios = Enum.zip_with(eights, ones, &(&1 / &2))
        [label, round(median.(ones)), round(median.(eights)), Float.round(median.(ratios), 2)]
      end

    Harness.table(
      "single-event writes, 1 and 8 processes (ops/s, medians of #{rounds} rounds)",
      ["case", "1 process", "8 processes", "8 / 1"],
      rows
    )

    # Each round's rate over the original's in the same round.
    vs = fn key, side ->
      Enum.zip_with(results[key], results[:original], &(elem(&1, side) / elem(&2, side)))
      |> median.()
      |> Float.round(2)
    end

    Harness.table(
      "over the original design's store (medians of the rounds' ratios)",
      ["case", "1 process", "8 processes"],
      for(
        {label, key} <- cases(),
        key not in [:original, :build],
        do: [label, vs.(key, 0), vs.(key, 1)]
      )
    )
  end

  defp cases do
    [
      {"Events.store/1", :api},
      {"EventStore.store/2, store full (each write evicts)", :full},
      {"Native.store_put/2 (the NIF alone)", :nif},
      {"original design's store", :original},
      {"raw ETS insert from the caller", :ets},
      {"building the event only", :build}
    ]
  end

  defp round_into(acc) do
    Application.stop(:elixir_scope_foundation)
    {:ok, _} = Application.ensure_all_started(:elixir_scope_foundation)
    fill(&Events.store_batch/1)
    %{handle: handle} = Support.lookup(:production)
    ctx = Original.start()
    fill(&Original.store_batch(ctx, &1))
    table = :ets.new(:write_scaling, [:set, :public, write_concurrency: true])
    fill(fn events -> {:ok, :ets.insert(table, for(e <- events, do: {e.event_id, e}))} end)
    full = [namespace: {:test, make_ref()}]
    {:ok, _} = EventStore.start_link(full ++ [max_events: @fill, max_age_seconds: 0])
    fill(&EventStore.store_batch(&1, full))

    writes = %{
      api: fn e -> {:ok, _} = Events.store(e) end,
      full: fn e -> {:ok, _} = EventStore.store(e, full) end,
      nif: fn e -> {:ok, _} = Native.store_put(handle, e) end,
      original: fn e -> {:ok, _} = Original.store(ctx, e) end,
      ets: fn e -> true = :ets.insert(table, {e.event_id, e}) end,
      build: fn e -> e end
    }

    acc =
      cases()
      |> Enum.map(&elem(&1, 1))
      |> Enum.shuffle()
      |> Enum.with_index()
      |> Enum.reduce(acc, fn {key, i}, acc ->
        write = Map.fetch!(writes, key)
        base = 1_000_000 + i * 100_000
        one = rate(1, base, write)
        eight = rate(8, base + 50_000, write)
        Map.update(acc, key, [{one, eight}], &[{one, eight} | &1])
      end)

    Original.stop(ctx)
    :ok = EventStore.stop(full)
    :ets.delete(table)
    acc
  end

  defp fill(batch) do
    for chunk <- Enum.chunk_every(1..@fill, 1000),
        do: {:ok, _} = batch.(Enum.map(chunk, &event/1))
  end

  defp rate(processes, base, write) do
    per = div(scale(16_000), processes)
    :erlang.garbage_collect()

    Harness.concurrent_ops_per_sec(processes, per, fn w, i ->
      write.(event(base + w * per + i))
    end)
  end
end

Bench.WriteScaling.run()
