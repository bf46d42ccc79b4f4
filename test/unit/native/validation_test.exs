defmodule ElixirScope.Foundation.Native.ValidationTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Native
  alias ElixirScope.Foundation.Types.{Config, Event}

  defp deep(0), do: :leaf
  defp deep(n), do: %{a: deep(n - 1)}

  defp deep_list(n), do: Enum.reduce(1..n, [], fn _, acc -> [acc] end)

  defp hostile_terms do
    [
      [1, 2 | 3],
      deep(100_000),
      deep_list(100_000),
      :binary.copy(<<0xFF, 0xFE>>, 5_000_000),
      <<0xC3, 0x28>>,
      <<1::5>>,
      2 ** 200,
      -(2 ** 200),
      -0.0,
      1.0e308,
      -1.0e308,
      {:tuple, self(), make_ref()},
      fn -> :ok end,
      %{{1, 2} => [3 | 4], "k" => %{}}
    ]
  end

  # Runs fun: it must return or raise ArgumentError, never :nif_panicked.
  defp outcome(fun) do
    fun.()
  rescue
    e in ErlangError ->
      flunk("NIF raised ErlangError #{inspect(e.original)}")

    e in ArgumentError ->
      {:raised, e}
  end

  defp assert_kind({:error, {kind, detail}}, expected) do
    assert kind == expected
    assert is_binary(detail) and detail != ""
  end

  describe "config_validate/1" do
    test "happy path and {kind, detail} errors" do
      assert Native.config_validate(Config.new()) == {:ok, :ok}
      bad = put_in(Config.new(), [:ai, :planning, :sampling_rate], 1.5)

      assert Native.config_validate(bad) ==
               {:error, {:range_error, "Sampling rate must be between 0 and 1"}}

      assert_kind(
        Native.config_validate(put_in(Config.new(), [:ai, :provider], 1)),
        :invalid_ai_provider
      )

      assert_kind(
        Native.config_validate(put_in(Config.new(), [:dev, :debug_mode], 1)),
        :config_validation_failed
      )
    end

    test "structural problems come back as function_clause / key_error, any term is accepted" do
      assert Native.config_validate(:not_a_config) == {:error, {:key_error, "ai"}}
      assert Native.config_validate(%{ai: %{}}) == {:error, {:function_clause, "ai"}}

      assert Native.config_validate(%{ai: %{provider: :mock}}) ==
               {:error, {:key_error, "analysis"}}
    end

    test "hostile leaves never crash and are rejected by the rules" do
      for term <- hostile_terms() do
        config = put_in(Config.new(), [:interface, :query_timeout], term)
        result = outcome(fn -> Native.config_validate(config) end)

        if is_integer(term) and term > 0 do
          assert result == {:ok, :ok}
        else
          assert_kind(result, :config_validation_failed)
        end

        extra = put_in(Config.new(), [:ai, :api_key], term)
        assert outcome(fn -> Native.config_validate(extra) end) == {:ok, :ok}
        assert outcome(fn -> Native.config_validate(term) end) == {:error, {:key_error, "ai"}}
      end
    end

    test "-0.0 and 1.0e308 in planning" do
      c = Config.new()

      assert Native.config_validate(put_in(c, [:ai, :planning, :sampling_rate], -0.0)) ==
               {:ok, :ok}

      assert_kind(
        Native.config_validate(put_in(c, [:ai, :planning, :sampling_rate], 1.0e308)),
        :range_error
      )

      assert Native.config_validate(put_in(c, [:ai, :planning, :performance_target], 1.0e308)) ==
               {:ok, :ok}

      assert Native.config_validate(put_in(c, [:ai, :planning, :performance_target], 2 ** 200)) ==
               {:ok, :ok}

      assert_kind(
        Native.config_validate(put_in(c, [:ai, :planning, :performance_target], -(2 ** 200))),
        :constraint_violation
      )
    end
  end

  describe "config_validate_section/2" do
    test "happy path, errors, ArgumentError on a bad section" do
      c = Config.new()

      for s <- [:ai, :capture, :storage, :interface, :dev] do
        assert Native.config_validate_section(s, Map.fetch!(c, s)) == {:ok, :ok}
      end

      assert_kind(Native.config_validate_section(:dev, %{}), :config_validation_failed)

      assert Native.config_validate_section(:storage, 1) ==
               {:error, {:function_clause, "storage"}}

      assert_raise ArgumentError, fn -> Native.config_validate_section("ai", c.ai) end
      assert_raise ArgumentError, fn -> Native.config_validate_section(:bogus, c.ai) end

      for term <- hostile_terms() do
        outcome(fn -> Native.config_validate_section(:ai, term) end)
        outcome(fn -> Native.config_validate_section(:dev, %{debug_mode: term}) end)
      end
    end
  end

  describe "event NIFs" do
    defp ev(fields \\ []), do: struct(Event.new(:test), fields)

    test "happy paths" do
      assert Native.event_validate(ev(), 10) == {:ok, :ok}
      assert Native.event_validate_required(ev()) == {:ok, :ok}
      assert Native.event_validate_types(ev()) == {:ok, :ok}
      assert Native.event_validate_data_size(1_000_000) == {:ok, :ok}
      assert Native.event_validate_type(:spawn) == {:ok, :ok}
    end

    test "{kind, detail} errors" do
      assert Native.event_validate(Event.empty(), 0) ==
               {:error, {:validation_failed, "Event ID cannot be nil"}}

      assert_kind(Native.event_validate(ev(event_id: "1"), 0), :type_mismatch)
      assert_kind(Native.event_validate(ev(), 1_000_001), :data_too_large)
      assert_kind(Native.event_validate_required(ev(timestamp: nil)), :validation_failed)
      assert_kind(Native.event_validate_types(ev(node: 1)), :type_mismatch)
      assert_kind(Native.event_validate_data_size(1_000_001), :data_too_large)
      assert_kind(Native.event_validate_type(:nope), :invalid_event_type)
      assert_kind(Native.event_validate_type("x"), :type_mismatch)
    end

    test "ArgumentError on wrong argument types" do
      for bad <- [:atom, [], "bin", 1, %{event_id: 1}] do
        assert_raise ArgumentError, fn -> Native.event_validate(bad, 0) end
        assert_raise ArgumentError, fn -> Native.event_validate_required(bad) end
        assert_raise ArgumentError, fn -> Native.event_validate_types(bad) end
      end

      for size <- [-1, 2 ** 70, 1.0, :big, "1"] do
        assert_raise ArgumentError, fn -> Native.event_validate(ev(), size) end
        assert_raise ArgumentError, fn -> Native.event_validate_data_size(size) end
      end
    end

    test "hostile field values never crash" do
      for term <- hostile_terms(),
          field <- [
            :event_id,
            :event_type,
            :timestamp,
            :wall_time,
            :node,
            :pid,
            :correlation_id,
            :parent_id
          ] do
        event = Map.put(ev(data: term), field, term)

        case outcome(fn -> Native.event_validate(event, 0) end) do
          {:ok, :ok} -> :ok
          other -> assert_kind(other, :type_mismatch)
        end

        outcome(fn -> Native.event_validate_type(term) end) |> assert_kind(:type_mismatch)
      end
    end
  end

  test "validation_constants/0 exposes the core's lists" do
    assert %{
             valid_providers: [:mock, :openai, :anthropic, :gemini],
             allowed_event_types: types,
             max_data_size: 1_000_000
           } = Native.validation_constants()

    assert length(types) == 22
    assert Enum.all?(types, &(Native.event_validate_type(&1) == {:ok, :ok}))
  end
end
