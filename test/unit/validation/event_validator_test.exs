defmodule ElixirScope.Foundation.Validation.EventValidatorTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.TestSupport.RandomTerms
  alias ElixirScope.Foundation.Types
  alias ElixirScope.Foundation.Types.Event
  alias ElixirScope.Foundation.Validation.EventValidator

  doctest EventValidator

  @allowed [
    :function_entry,
    :function_exit,
    :state_change,
    :message_send,
    :message_receive,
    :spawn,
    :exit,
    :link,
    :unlink,
    :monitor,
    :demonitor,
    :system_event,
    :custom_event,
    :config_updated,
    :config_reset,
    :test,
    :test1,
    :test2,
    :test3,
    :default,
    :type_a,
    :type_b
  ]

  defp event(fields \\ []) do
    base = [
      event_id: 1,
      event_type: :test,
      timestamp: -5,
      wall_time: DateTime.utc_now(),
      node: Node.self(),
      pid: self(),
      correlation_id: "c",
      parent_id: 2,
      data: %{}
    ]

    struct(Event, Keyword.merge(base, fields))
  end

  defp assert_error(result, type, code, severity, message) do
    assert {:error, %Types.Error{} = e} = result
    assert {e.error_type, e.code, e.severity, e.message} == {type, code, severity, message}
    assert {e.category, e.subcategory} == {:data, :validation}
    e
  end

  describe "validate/1" do
    test "a full event and Event.new/0 pass" do
      assert EventValidator.validate(event()) == :ok
      assert EventValidator.validate(Event.new()) == :ok
      assert EventValidator.validate(Event.new(:anything_at_all)) == :ok
    end

    test "Event.empty() -> \"Event ID cannot be nil\"" do
      Event.empty()
      |> EventValidator.validate()
      |> assert_error(:validation_failed, 2001, :high, "Event ID cannot be nil")
    end

    test "required fields in order" do
      event(event_type: nil, timestamp: nil)
      |> EventValidator.validate()
      |> assert_error(:validation_failed, 2001, :high, "Event type cannot be nil")

      event(timestamp: nil)
      |> EventValidator.validate()
      |> assert_error(:validation_failed, 2001, :high, "Timestamp cannot be nil")
    end

    test "every type rule, with the exact message" do
      cases = [
        {[event_id: "1"], "Event ID must be a positive integer"},
        {[event_id: 0], "Event ID must be a positive integer"},
        {[event_id: -3], "Event ID must be a positive integer"},
        {[event_type: "t"], "Event type must be an atom"},
        {[timestamp: 1.5], "Timestamp must be an integer"},
        {[wall_time: ~N[2020-01-01 00:00:00]], "Wall time must be a DateTime"},
        {[wall_time: %{__struct__: :fake}], "Wall time must be a DateTime"},
        {[node: "n"], "Node must be an atom"},
        {[pid: :self], "PID must be a process identifier"},
        {[correlation_id: ~c"abc"], "Correlation ID must be a string"},
        {[correlation_id: <<1::3>>], "Correlation ID must be a string"},
        {[parent_id: 0], "Parent ID must be a positive integer"}
      ]

      for {fields, message} <- cases do
        event(fields)
        |> EventValidator.validate()
        |> assert_error(:type_mismatch, 2002, :medium, message)
      end
    end

    test "falsy optional fields are skipped; bigints and negative timestamps are fine" do
      assert EventValidator.validate(event(wall_time: nil, node: nil, pid: false)) == :ok
      assert EventValidator.validate(event(event_id: false)) == :ok
      assert EventValidator.validate(event(event_id: 2 ** 100, timestamp: -(2 ** 100))) == :ok
    end

    test "2 MB data -> :data_too_large with size context" do
      data = String.duplicate("x", 2_000_000)

      e =
        event(data: data)
        |> EventValidator.validate()
        |> assert_error(:data_too_large, 2003, :high, "Event data too large")

      assert e.context == %{size: :erlang.external_size(data), max_size: 1_000_000}
    end

    test "size boundary: a 999_994-byte binary passes, 999_995 fails" do
      assert EventValidator.validate(event(data: :binary.copy("a", 999_994))) == :ok

      assert {:error, %{error_type: :data_too_large, context: %{size: 1_000_001}}} =
               EventValidator.validate(event(data: :binary.copy("a", 999_995)))
    end

    test "types are checked before size" do
      event(event_id: "x", data: :binary.copy("a", 2_000_000))
      |> EventValidator.validate()
      |> assert_error(:type_mismatch, 2002, :medium, "Event ID must be a positive integer")
    end

    test "non-Event argument raises FunctionClauseError" do
      assert_raise FunctionClauseError, fn -> EventValidator.validate(%{event_id: 1}) end
      assert_raise FunctionClauseError, fn -> EventValidator.validate(nil) end
    end
  end

  describe "errors made in Elixir" do
    test "a nil required field gives exactly the error of the rules in Rust" do
      empty = Event.empty()

      for event <- [empty, %{empty | event_id: 1}, %{empty | event_id: 1, event_type: :x}] do
        {:error, native} = ElixirScope.Foundation.Native.event_validate_required(event)
        expected = ElixirScope.Foundation.Error.from_native(native)

        for {:error, got} <- [
              EventValidator.validate(event),
              EventValidator.validate_required_fields(event)
            ] do
          assert %{got | timestamp: nil} == %{expected | timestamp: nil}
        end
      end
    end
  end

  describe "step functions" do
    test "validate_required_fields/1" do
      assert EventValidator.validate_required_fields(event(event_id: "bad type")) == :ok

      Event.empty()
      |> EventValidator.validate_required_fields()
      |> assert_error(:validation_failed, 2001, :high, "Event ID cannot be nil")
    end

    test "validate_field_types/1" do
      assert EventValidator.validate_field_types(Event.empty()) == :ok

      event(pid: "p")
      |> EventValidator.validate_field_types()
      |> assert_error(:type_mismatch, 2002, :medium, "PID must be a process identifier")
    end

    test "validate_data_size/1" do
      assert EventValidator.validate_data_size(Event.empty()) == :ok

      assert {:error, %{error_type: :data_too_large, context: %{max_size: 1_000_000}}} =
               EventValidator.validate_data_size(event(data: List.duplicate(1, 600_000)))
    end

    test "validate_event_type/1" do
      for type <- @allowed, do: assert(EventValidator.validate_event_type(type) == :ok)

      e =
        :x_unknown
        |> EventValidator.validate_event_type()
        |> assert_error(:invalid_event_type, 2004, :medium, "Invalid event type")

      assert e.context == %{event_type: :x_unknown, allowed_types: @allowed}

      "x"
      |> EventValidator.validate_event_type()
      |> assert_error(:type_mismatch, 2002, :medium, "Event type must be an atom")

      assert {:error, %{error_type: :invalid_event_type}} =
               EventValidator.validate_event_type(nil)

      assert {:error, %{error_type: :type_mismatch}} = EventValidator.validate_event_type(1)
    end
  end

  describe "data size is exactly :erlang.external_size/1 (seeded)" do
    setup do
      :rand.seed(:exsss, {1, 2, 3})
      :ok
    end

    # ~1.2 MB of small terms: far more than the bounded walk accepts.
    defp nested_data, do: Enum.map(1..50_000, &{&1, "value #{&1}", [:a, -&1]})

    defp reported_size(data) do
      assert {:error, %{error_type: :data_too_large, context: %{size: size}}} =
               EventValidator.validate_data_size(event(data: data))

      size
    end

    test "random data over 1 MB, padded by a binary or by 50k nested terms" do
      nested = nested_data()
      assert :erlang.external_size(nested) > 1_000_000

      for _ <- 1..150 do
        term = RandomTerms.term(4)
        padded = {term, :binary.copy("p", 1_000_000)}
        assert reported_size(padded) == :erlang.external_size(padded)
        big = [term | nested]
        assert reported_size(big) == :erlang.external_size(big)
      end
    end

    test "large and deep random terms" do
      terms =
        RandomTerms.large() ++
          for kind <- [:list, :map, :tuple, :improper], do: RandomTerms.deep(kind, 60_000)

      for data <- terms, :erlang.external_size(data) > 1_000_000 do
        assert reported_size(data) == :erlang.external_size(data)

        assert {:error, %{context: %{size: size}}} = EventValidator.validate(event(data: data))
        assert size == :erlang.external_size(data)
      end
    end

    test "the 1 000 000-byte boundary with big nested data (a fun inside)" do
      base = [fn -> :ok end | Enum.take(nested_data(), 20_000)]
      pad = fn n -> [:binary.copy("b", n) | base] end
      fill = 1_000_000 - :erlang.external_size(pad.(0))
      assert fill > 100_000
      assert :erlang.external_size(pad.(fill)) == 1_000_000

      assert EventValidator.validate_data_size(event(data: pad.(fill))) == :ok
      assert EventValidator.validate(event(data: pad.(fill))) == :ok
      assert reported_size(pad.(fill + 1)) == 1_000_001
    end
  end
end
