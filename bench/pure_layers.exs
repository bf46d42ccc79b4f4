# Cost of the pure Elixir layers (Utils, Error, ErrorContext) next to the
# cheapest possible NIF round trip. Run: mix run bench/pure_layers.exs
Code.require_file("support/harness.exs", __DIR__)

alias ElixirScope.Foundation.{Error, ErrorContext, Native, Utils}

small = %{user: 1, action: :login, tags: ["a", "b"]}
kb100 = Map.new(1..5_000, &{&1, "value-#{&1}"})
ctx = ErrorContext.new(Bench, :op)

cases = [
  {"Native.native_version/0 (empty NIF round trip)", fn -> Native.native_version() end},
  {"Utils.generate_id/0", fn -> Utils.generate_id() end},
  {"Utils.generate_correlation_id/0", fn -> Utils.generate_correlation_id() end},
  {"Utils.monotonic_timestamp/0", fn -> Utils.monotonic_timestamp() end},
  {"Utils.deep_size/1 (small map)", fn -> Utils.deep_size(small) end},
  {"Utils.deep_size/1 (~100 KB map)", fn -> Utils.deep_size(kb100) end},
  {"Utils.truncate_if_large/1 (small map)", fn -> Utils.truncate_if_large(small) end},
  {"Utils.truncate_if_large/1 (~100 KB map)", fn -> Utils.truncate_if_large(kb100) end},
  {"Utils.get_nested/2 (3 levels)",
   fn -> Utils.get_nested(%{a: %{b: %{c: 1}}}, [:a, :b, :c]) end},
  {"Error.new/3", fn -> Error.new(:timeout, nil, context: small) end},
  {"ErrorContext.new/2", fn -> ErrorContext.new(Bench, :op) end},
  {"ErrorContext.with_context/2 (ok)", fn -> ErrorContext.with_context(ctx, fn -> :ok end) end},
  {"ErrorContext.run/2 (ok)", fn -> ErrorContext.run(ctx, fn _ -> :ok end) end}
]

rows =
  for {name, fun} <- cases do
    ops = Bench.Harness.ops_per_sec(fun, iterations: 20_000)
    [name, ops, 1_000_000_000 / ops]
  end

Bench.Harness.table("Pure layers, one process", ["operation", "ops/s", "ns/op"], rows)
