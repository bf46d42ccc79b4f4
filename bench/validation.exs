# Validation and logic: NIF-backed functions vs pure-Elixir equivalents.
#   mix run bench/validation.exs
# Runs in well under a minute. The pure-Elixir side is the reference model
# of the rules used by the randomized tests (test/support).
Code.require_file("support/harness.exs", __DIR__)
Code.require_file("../test/support/validation_reference.ex", __DIR__)

alias Bench.Harness
alias ElixirScope.Foundation.Logic.{ConfigLogic, EventLogic}
alias ElixirScope.Foundation.Native
alias ElixirScope.Foundation.Test.ValidationReference, as: Ref
alias ElixirScope.Foundation.Types.Config
alias ElixirScope.Foundation.Validation.{ConfigValidator, EventValidator}

config = Config.new()
bad_config = put_in(config, [:dev, :debug_mode], 1)
{:ok, event} = EventLogic.create_event(:test, %{user: 1, items: Enum.to_list(1..20)})
big_event = %{event | data: :binary.copy("x", 900_000)}
types = Ref.allowed_types()
changed = put_in(config, [:dev, :debug_mode], true)
n = 50_000

measure = fn fun -> Harness.ops_per_sec(fun, iterations: n) end
us = fn ops -> 1_000_000 / ops end

rows =
  [
    {"config validate (valid config)", fn -> ConfigValidator.validate(config) end,
     fn -> Ref.validate_config(config) end},
    {"config validate (last section fails)", fn -> ConfigValidator.validate(bad_config) end,
     fn -> Ref.validate_config(bad_config) end},
    {"event validate (small data)", fn -> EventValidator.validate(event) end,
     fn -> Ref.validate_event(event) end},
    {"event validate (900 KB binary data)", fn -> EventValidator.validate(big_event) end,
     fn -> Ref.validate_event(big_event) end},
    {"validate_event_type (list membership)",
     fn -> EventValidator.validate_event_type(:spawn) end, fn -> :spawn in types end},
    {"NIF floor: event_validate_data_size vs `>`", fn -> Native.event_validate_data_size(10) end,
     fn -> 10 > 1_000_000 end},
    {"config: one NIF pass (validate) vs Elixir diff_configs",
     fn -> Native.config_validate(config) end,
     fn -> ConfigLogic.diff_configs(config, changed) end}
  ]
  |> Enum.map(fn {name, nif, elixir} ->
    a = measure.(nif)
    b = measure.(elixir)
    [name, us.(a), us.(b), b / a]
  end)

Harness.table(
  "Validation: NIF vs pure Elixir (µs per call, #{n} calls, 1 process)",
  ["operation", "NIF path µs", "pure Elixir µs", "NIF time / Elixir time"],
  rows
)

glue =
  [
    {"create_event/3 (struct + NIF validate)", fn -> EventLogic.create_event(:test, %{a: 1}) end},
    {"serialize_event/1 (term_to_binary compressed)",
     fn -> EventLogic.serialize_event(event) end},
    {"update_config/3 (put_in + NIF validate)",
     fn -> ConfigLogic.update_config(config, [:dev, :debug_mode], true) end},
    {"updatable_path?/1 (Elixir `in`)",
     fn -> ConfigLogic.updatable_path?([:dev, :debug_mode]) end}
  ]
  |> Enum.map(fn {name, fun} -> [name, us.(measure.(fun))] end)

Harness.table("Logic glue kept in Elixir (µs per call)", ["operation", "µs"], glue)
