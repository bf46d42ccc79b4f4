# Validators, logic and size utilities: each public function of the
# validation and logic modules, and Utils' term size functions, against a
# model of the original's pure-Elixir version
# (bench/support/original_logic.exs), in one run.
#
#   MIX_ENV=prod mix run bench/validation.exs     # a few seconds; ROUNDS=n (5)
#
# Each round times both sides back to back (50 000 calls each, alternating
# which goes first); a row shows each side's median and the median of the
# rounds' ratios (original time / project time: above 1, the project is
# faster).
Code.require_file("support/harness.exs", __DIR__)
Code.require_file("../test/support/validation_reference.ex", __DIR__)
Code.require_file("support/original_logic.exs", __DIR__)

alias Bench.{Harness, OriginalLogic}
alias ElixirScope.Foundation.Logic.{ConfigLogic, EventLogic}
alias ElixirScope.Foundation.Utils
alias ElixirScope.Foundation.Types.Config
alias ElixirScope.Foundation.Validation.{ConfigValidator, EventValidator}

config = Config.new()
bad_config = put_in(config, [:dev, :debug_mode], 1)
{:ok, event} = EventLogic.create_event(:test, %{user: 1, items: Enum.to_list(1..20)})
big_event = %{event | data: :binary.copy("x", 900_000)}
no_id = %{event | event_id: nil}
{:ok, binary} = EventLogic.serialize_event(event)
n = 50_000
rounds = String.to_integer(System.get_env("ROUNDS", "5"))

cases = [
  {"ConfigValidator.validate/1, valid", fn -> ConfigValidator.validate(config) end,
   fn -> OriginalLogic.validate_config(config) end},
  {"ConfigValidator.validate/1, last section fails",
   fn -> ConfigValidator.validate(bad_config) end,
   fn -> OriginalLogic.validate_config(bad_config) end},
  {"EventValidator.validate/1, small data", fn -> EventValidator.validate(event) end,
   fn -> OriginalLogic.validate_event(event) end},
  {"EventValidator.validate/1, 900 KB binary data", fn -> EventValidator.validate(big_event) end,
   fn -> OriginalLogic.validate_event(big_event) end},
  {"EventValidator.validate/1, nil id", fn -> EventValidator.validate(no_id) end,
   fn -> OriginalLogic.validate_event(no_id) end},
  {"EventValidator.validate_event_type/1", fn -> EventValidator.validate_event_type(:spawn) end,
   fn -> OriginalLogic.validate_event_type(:spawn) end},
  {"EventLogic.create_event/3 (Events.new_event)",
   fn -> EventLogic.create_event(:test, %{a: 1}) end,
   fn -> OriginalLogic.create_event(:test, %{a: 1}) end},
  {"EventLogic.serialize_event/1", fn -> EventLogic.serialize_event(event) end,
   fn -> OriginalLogic.serialize_event(event) end},
  {"EventLogic.deserialize_event/1", fn -> EventLogic.deserialize_event(binary) end,
   fn -> OriginalLogic.deserialize_event(binary) end},
  {"ConfigLogic.update_config/3",
   fn -> ConfigLogic.update_config(config, [:dev, :debug_mode], true) end,
   fn -> OriginalLogic.update_config(config, [:dev, :debug_mode], true) end},
  {"EventLogic.create_function_entry/5",
   fn -> EventLogic.create_function_entry(Bench, :run, 2, [1, "two"]) end,
   fn -> OriginalLogic.create_function_entry(Bench, :run, 2, [1, "two"]) end},
  {"Utils.deep_size/1, small map", fn -> Utils.deep_size(event.data) end,
   fn -> OriginalLogic.deep_size(event.data) end},
  {"Utils.truncate_if_large/1, small map", fn -> Utils.truncate_if_large(event.data) end,
   fn -> OriginalLogic.truncate_if_large(event.data) end}
]

us = fn fun -> 1_000_000 / Harness.ops_per_sec(fun, iterations: n) end

results =
  for r <- 1..rounds, {name, ours, original} <- cases do
    {a, b} =
      if rem(r, 2) == 0,
        do: {us.(ours), us.(original)},
        else:
          (
            b = us.(original)
            {us.(ours), b}
          )

    {name, a, b}
  end

rows =
  for {name, _, _} <- cases do
    mine = for {^name, a, b} <- results, do: {a, b}
    ours = Enum.map(mine, &elem(&1, 0))
    orig = Enum.map(mine, &elem(&1, 1))
    ratios = Enum.map(mine, fn {a, b} -> b / a end)
    [name, Harness.median(ours), Harness.median(orig), Harness.median(ratios)]
  end

Harness.table(
  "Validation and logic: project vs original design (µs per call, median of #{rounds} rounds)",
  ["operation", "project µs", "original µs", "original / project"],
  rows
)
