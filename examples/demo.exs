# The foundation layers at work: run with `scripts/demo` (or `mix run examples/demo.exs`).
alias ElixirScope.Foundation
alias ElixirScope.Foundation.{Config, Error, ErrorContext, Events, Telemetry, Utils}
alias ElixirScope.Foundation.Types

section = fn title -> IO.puts("\n== #{title}") end

show = fn label, value ->
  text = value |> inspect(pretty: true, limit: 8) |> String.replace("\n", "\n    ")
  IO.puts("  #{label}: #{text}")
end

section.("Native core")
show.("Rust core version", ElixirScope.Foundation.Native.native_version())

show.(
  "foundation status",
  Foundation.health() |> elem(1) |> Map.take([:status, :foundation_available])
)

section.("Utils")
show.("correlation id", Utils.generate_correlation_id())
show.("format_duration(1_500_000_000)", Utils.format_duration(1_500_000_000))
show.("format_bytes(1536)", Utils.format_bytes(1536))

show.(
  "truncate_if_large(20k list)",
  Utils.truncate_if_large(Enum.to_list(1..20_000)) |> Map.take([:truncated, :original_size])
)

section.("Configuration (validated in Rust, read without a GenServer call)")
show.("ai.provider", Config.get([:ai, :provider]))
:ok = Config.subscribe()
show.("update sampling_rate to 0.5", Config.update([:ai, :planning, :sampling_rate], 0.5))

receive do
  {:config_notification, note} -> show.("subscriber got", note)
after
  1_000 -> IO.puts("  (no notification)")
end

show.(
  "update sampling_rate to 1.5",
  Config.update([:ai, :planning, :sampling_rate], 1.5)
  |> elem(1)
  |> Map.take([:code, :error_type, :message])
)

show.(
  "update a forbidden path",
  Config.update([:ai, :provider], :openai) |> elem(1) |> Map.take([:error_type, :message])
)

:ok = Config.reset()

section.("Events (stored and indexed in the Rust store)")
cid = Utils.generate_correlation_id()

ids =
  for i <- 1..5 do
    {:ok, event} = Events.new_event(:demo_step, %{step: i, pid: self()}, correlation_id: cid)
    {:ok, id} = Events.store(event)
    id
  end

show.("stored ids", ids)
{:ok, chain} = Events.get_correlation_chain(cid)
show.("correlation chain steps", Enum.map(chain, & &1.data.step))
{:ok, event} = Events.get(hd(ids))
{:ok, binary} = Events.serialize(event)
show.("serialized bytes", byte_size(binary))
show.("round trip equal?", Events.deserialize(binary) == {:ok, event})

show.(
  "invalid event",
  Events.store(Types.Event.empty()) |> elem(1) |> Map.take([:code, :message])
)

{:ok, stats} = Events.stats()
show.("store stats", Map.take(stats, [:current_event_count, :events_stored]))

section.("Telemetry (metrics held in Rust)")
for _ <- 1..3, do: Telemetry.emit_counter([:demo, :clicks], %{})
Telemetry.emit_gauge([:demo, :temperature], 21.5, %{})
{:ok, metrics} = Telemetry.get_metrics()
show.("demo metrics", metrics[:demo])

section.("Errors and error context")
error = Error.new(:network_error, nil, context: %{host: "example.org"})
show.("error", Error.to_string(error))
show.("retry delays", Enum.map(0..3, &Error.retry_delay(error, &1)))
ctx = ErrorContext.new(__MODULE__, :demo, metadata: %{user: 42})
result = ErrorContext.with_context(ctx, fn -> raise "boom" end)
show.("with_context(raise)", result |> elem(1) |> Map.take([:code, :error_type, :message]))
IO.puts("\nDone.")
