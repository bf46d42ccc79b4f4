defmodule Bench.Harness do
  @moduledoc """
  A small timing harness for the bench/ scripts (no benchee: hex.pm is not
  reachable). Measures operations per second and prints aligned tables.

      Bench.Harness.ops_per_sec(fn -> :ok end, iterations: 10_000)
      Bench.Harness.concurrent_ops_per_sec(8, 1_000, fn _worker, _i -> :ok end)
      Bench.Harness.table("title", ["op", "ops/s"], [["get", 1.0e6]])
  """

  @doc "The middle value of `xs` (the upper one of the two for an even count)."
  def median(xs) do
    sorted = Enum.sort(xs)
    Enum.at(sorted, div(length(sorted), 2))
  end

  @doc "Runs `fun` `iterations` times (after a warm-up) and returns ops/s."
  def ops_per_sec(fun, opts \\ []) do
    iterations = Keyword.get(opts, :iterations, 10_000)
    warmup = Keyword.get(opts, :warmup, min(iterations, 1_000))
    for _ <- 1..warmup//1, do: fun.()
    {micros, _} = :timer.tc(fn -> repeat(fun, iterations) end)
    iterations / max(micros, 1) * 1_000_000
  end

  @doc """
  Runs `fun.(worker, i)` `per_worker` times in each of `workers` processes,
  all started together; returns total ops/s over the wall time.
  """
  def concurrent_ops_per_sec(workers, per_worker, fun) do
    parent = self()

    pids =
      for w <- 1..workers do
        spawn_link(fn ->
          receive do
            :go -> :ok
          end

          run_worker(fun, w, 1, per_worker)
          send(parent, {:done, self()})
        end)
      end

    {micros, _} =
      :timer.tc(fn ->
        Enum.each(pids, &send(&1, :go))
        Enum.each(pids, fn pid -> receive do: ({:done, ^pid} -> :ok) end)
      end)

    workers * per_worker / max(micros, 1) * 1_000_000
  end

  # Results are dropped as they come: a list of them would be collected
  # (and copied by the worker's garbage collections) inside the timing.
  defp run_worker(_fun, _w, i, n) when i > n, do: :ok

  defp run_worker(fun, w, i, n) do
    fun.(w, i)
    run_worker(fun, w, i + 1, n)
  end

  @doc "Times one call of `fun`; returns `{result, seconds}`."
  def time(fun) do
    {micros, result} = :timer.tc(fun)
    {result, micros / 1_000_000}
  end

  @doc "Prints a table: `rows` are lists of cells (numbers are formatted)."
  def table(title, headers, rows) do
    cells = Enum.map(rows, fn row -> Enum.map(row, &format/1) end)
    all = [headers | cells]

    widths =
      all
      |> Enum.zip_with(& &1)
      |> Enum.map(fn column -> column |> Enum.map(&String.length/1) |> Enum.max() end)

    line = fn row ->
      row
      |> Enum.zip(widths)
      |> Enum.map_join(" | ", fn {cell, w} -> String.pad_leading(cell, w) end)
    end

    IO.puts("\n## #{title}\n")
    IO.puts("| " <> line.(headers) <> " |")
    IO.puts("|" <> Enum.map_join(widths, "|", &String.duplicate("-", &1 + 2)) <> "|")
    Enum.each(cells, &IO.puts("| " <> line.(&1) <> " |"))
  end

  @doc "Formats a number for a table cell."
  def format(n) when is_float(n) and n >= 100, do: n |> round() |> format()
  def format(n) when is_float(n), do: :erlang.float_to_binary(n, decimals: 2)

  def format(n) when is_integer(n) do
    n
    |> Integer.to_string()
    |> String.reverse()
    |> String.replace(~r/(\d{3})(?=\d)/, "\\1,")
    |> String.reverse()
  end

  def format(other), do: to_string(other)

  defp repeat(_fun, 0), do: :ok

  defp repeat(fun, n) do
    fun.()
    repeat(fun, n - 1)
  end
end
