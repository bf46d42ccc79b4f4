defmodule ElixirScope.Foundation.ValidationRandomTest do
  # Seeded random inputs (malformed structs, wrong types, deep and huge terms)
  # thrown at the validators and the logic modules. Every call must return a
  # value or raise one of the documented exceptions; results of the validators
  # must match a pure-Elixir model of the rules (test/support).
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Logic.{ConfigLogic, EventLogic}
  alias ElixirScope.Foundation.Native
  alias ElixirScope.Foundation.Test.ValidationReference, as: Ref
  alias ElixirScope.Foundation.Types
  alias ElixirScope.Foundation.Types.{Config, Event}
  alias ElixirScope.Foundation.Validation.{ConfigValidator, EventValidator}

  @iterations 400
  @atoms [:mock, :openai, :anthropic, :gemini, :bogus, :fast, :balanced, :thorough] ++
           [:drop_oldest, :drop_newest, :block, :error, :zstd, :gzip, :none, :lz4] ++
           [nil, true, false, :test]
  @interesting @atoms ++
                 [-1, 0, 1, 2, 2 ** 70, -(2 ** 70), -0.0, 0.0, 1.0, 1.0000001, 1.0e308] ++
                 ["./data", <<0xFF>>]
  @leaf_paths [
    [:ai, :provider],
    [:ai, :analysis, :timeout],
    [:ai, :planning, :sampling_rate],
    [:ai, :planning, :performance_target],
    [:ai, :planning, :default_strategy],
    [:capture, :ring_buffer, :size],
    [:capture, :ring_buffer, :overflow_strategy],
    [:capture, :processing, :batch_size],
    [:capture, :vm_tracing, :trace_children],
    [:storage, :hot, :max_events],
    [:storage, :warm, :enable],
    [:storage, :warm, :path],
    [:storage, :warm, :compression],
    [:storage, :cold, :enable],
    [:interface, :query_timeout],
    [:interface, :enable_streaming],
    [:dev, :debug_mode]
  ]

  setup do
    :rand.seed(:exsss, {1, 2, 3})
    :ok
  end

  defp pick(list), do: Enum.at(list, :rand.uniform(length(list)) - 1)

  defp random_term(depth \\ 0) do
    case :rand.uniform(if depth > 2, do: 12, else: 17) do
      1 ->
        :rand.uniform(5) - 2

      2 ->
        pick([2 ** 70, -(2 ** 70), 0, 1])

      3 ->
        pick([-0.0, 0.0, 1.0, 0.5, 1.5, 1.0e308, -1.0e308])

      4 ->
        pick(@atoms)

      5 ->
        pick(["", "p", <<0xFF, 0xC3>>, <<1::3>>])

      6 ->
        self()

      7 ->
        make_ref()

      8 ->
        {:a, 1}

      9 ->
        [1 | 2]

      10 ->
        fn -> :ok end

      11 ->
        %{}

      12 ->
        :rand.uniform(3) == 1

      13 ->
        Map.new(1..:rand.uniform(3), fn i -> {pick([:a, :enable, i]), random_term(depth + 1)} end)

      14 ->
        Enum.map(1..:rand.uniform(3), fn _ -> random_term(depth + 1) end)

      15 ->
        Enum.reduce(1..2_000, :leaf, &%{&1 => &2})

      16 ->
        :binary.copy("x", 1_100_000)

      17 ->
        DateTime.utc_now()
    end
  end

  defp put_path(map, [key], value) when is_map(map), do: Map.put(map, key, value)

  defp put_path(map, [key | rest], value) when is_map(map),
    do: Map.put(map, key, put_path(Map.get(map, key, %{}), rest, value))

  defp put_path(_not_map, path, value), do: put_path(%{}, path, value)

  defp random_config do
    Enum.reduce(1..:rand.uniform(3), Config.new(), fn _, c ->
      path = pick(@leaf_paths)

      path =
        if :rand.uniform(5) == 1, do: Enum.take(path, :rand.uniform(length(path))), else: path

      value = if :rand.uniform(2) == 1, do: pick(@interesting), else: random_term()
      put_path(c, path, value)
    end)
  end

  defp run_validator(config) do
    case ConfigValidator.validate(config) do
      :ok ->
        :ok

      {:error, %Types.Error{error_type: t, message: m, code: code}} when code in 1001..1004 ->
        {:error, {t, m}}
    end
  rescue
    e in [FunctionClauseError, KeyError] -> {:raise, e.__struct__}
  end

  test "ConfigValidator matches the reference model on random configs" do
    for _ <- 1..3_000 do
      config = random_config()
      result = run_validator(config)
      assert result == Ref.validate_config(config), inspect(config, limit: 8)

      # The validator accepts in Elixir what it can; the rules in Rust (the
      # ones ConfigServer applies) must accept exactly the same configs.
      native = Native.config_validate(config)
      assert result == :ok == (native == {:ok, :ok}), inspect({config, native}, limit: 8)
    end
  end

  test "every checked field of a valid event, set to each edge value, is judged as Rust judges it" do
    base = Event.new(:test)
    dt = DateTime.utc_now()
    values = @interesting ++ [dt, %{__struct__: DateTime}, %{dt | year: 1}, self(), make_ref()]
    fields = [:event_id, :event_type, :timestamp, :wall_time, :node, :pid, :correlation_id]

    for field <- fields ++ [:parent_id], value <- values do
      event = Map.put(base, field, value)
      native = Native.event_validate(event, :erlang.external_size(event.data))
      got = EventValidator.validate(event)
      assert got == :ok == (native == {:ok, :ok}), inspect({field, value, native})
      types = EventValidator.validate_field_types(event)
      assert types == :ok == (Native.event_validate_types(event) == {:ok, :ok})
    end
  end

  test "every checked leaf of the default config, set to each edge value, is judged as Rust judges it" do
    for path <- @leaf_paths, value <- @interesting ++ [%{}, [], {1}] do
      config = put_path(Config.new(), path, value)
      result = run_validator(config)
      assert result == :ok == (Native.config_validate(config) == {:ok, :ok}), inspect(path)
      assert result == Ref.validate_config(config), inspect({path, value})
    end
  end

  test "the validators' constants are the core's" do
    core = Native.validation_constants()
    assert EventValidator.constants().allowed_event_types == core.allowed_event_types
    assert EventValidator.constants().max_data_size == core.max_data_size
    assert ConfigValidator.constants().valid_providers == core.valid_providers
  end

  test "ConfigLogic never fails outside its contract on random input" do
    for _ <- 1..@iterations do
      config = random_config()
      path = pick([pick(ConfigLogic.updatable_paths()), [:ai, :provider], random_term(), []])
      value = random_term()

      case safe(fn -> ConfigLogic.update_config(config, path, value) end) do
        {:ok, %Config{}} ->
          :ok

        {:error, %Types.Error{}} ->
          :ok

        {:raised, e} ->
          assert e.__struct__ in [
                   FunctionClauseError,
                   KeyError,
                   BadMapError,
                   ArgumentError,
                   UndefinedFunctionError,
                   Protocol.UndefinedError
                 ]
      end

      assert {tag, _} =
               ConfigLogic.get_config_value(config, if(is_list(path), do: path, else: [path]))

      assert tag in [:ok, :error]
      assert is_map(ConfigLogic.diff_configs(Config.new(), config))
    end
  end

  defp random_event do
    fields = [
      :event_id,
      :event_type,
      :timestamp,
      :wall_time,
      :node,
      :pid,
      :correlation_id,
      :parent_id,
      :data
    ]

    Enum.reduce(1..:rand.uniform(3), Event.new(:test), fn _, e ->
      Map.put(e, pick(fields), random_term())
    end)
  end

  test "EventValidator matches the reference model on random events" do
    for _ <- 1..@iterations do
      event = random_event()

      got =
        case EventValidator.validate(event) do
          :ok ->
            :ok

          {:error, %Types.Error{error_type: t, message: m, code: c}} when c in 2001..2003 ->
            {:error, {t, m}}
        end

      assert got == Ref.validate_event(event), inspect(event, limit: 8)

      # Accepted in Elixir exactly when the store's rules in Rust accept it.
      native = Native.event_validate(event, :erlang.external_size(event.data))
      assert got == :ok == (native == {:ok, :ok}), inspect({event, native}, limit: 8)
      type = random_term()

      case EventValidator.validate_event_type(type) do
        :ok -> assert is_atom(type) and type in Ref.allowed_types()
        {:error, %Types.Error{code: 2004}} -> assert is_atom(type)
        {:error, %Types.Error{code: 2002}} -> refute is_atom(type)
      end
    end
  end

  test "EventLogic on random input returns values or documented errors" do
    for _ <- 1..@iterations do
      type = random_term()
      data = random_term()

      opts =
        pick([
          [],
          [event_id: random_term()],
          [timestamp: random_term(), correlation_id: random_term()]
        ])

      case EventLogic.create_event(type, data, opts) do
        {:ok, %Event{} = e} ->
          {:ok, bin} = EventLogic.serialize_event(e)
          assert EventLogic.deserialize_event(bin) == {:ok, e}

        {:error, %Types.Error{code: c}} ->
          assert c in 2001..2003
      end

      garbage =
        :binary.copy(<<:rand.uniform(255)>>, :rand.uniform(40)) <> :crypto.strong_rand_bytes(8)

      assert {:error, %Types.Error{}} = EventLogic.deserialize_event(<<131>> <> garbage)
    end
  end

  test "malformed structs and non-structs raise only the documented exceptions" do
    for _ <- 1..@iterations do
      term = random_term()
      assert_raise FunctionClauseError, fn -> ConfigValidator.validate(term) end
      assert_raise FunctionClauseError, fn -> EventValidator.validate(term) end

      field = pick([:event_id, :event_type, :timestamp, :pid, :parent_id])
      broken = Map.delete(Event.new(:test), field)
      assert_raise ArgumentError, fn -> EventValidator.validate(broken) end

      section = pick([:ai, :capture, :storage, :interface, :dev])
      config = Map.put(Config.new(), section, term)

      case safe(fn -> ConfigValidator.validate(config) end) do
        :ok -> flunk("a random #{section} section passed: #{inspect(term, limit: 5)}")
        {:error, %Types.Error{code: code}} -> assert code in 1001..1004
        {:raised, e} -> assert e.__struct__ in [FunctionClauseError, KeyError]
      end
    end
  end

  defp safe(fun) do
    fun.()
  rescue
    e -> {:raised, e}
  end
end
