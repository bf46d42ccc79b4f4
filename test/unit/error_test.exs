defmodule ElixirScope.Foundation.ErrorTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Error
  alias ElixirScope.Foundation.TestSupport.RandomTerms
  alias ElixirScope.Foundation.Types

  doctest Error

  # The error-code table: error_type, code, category, subcategory, severity, retry strategy, default message
  @table [
    {:invalid_config_structure, 1101, :config, :structure, :high, :immediate,
     "Configuration structure is invalid"},
    {:missing_required_field, 1102, :config, :structure, :high, :immediate,
     "Required configuration field missing"},
    {:invalid_config_value, 1201, :config, :validation, :medium, :no_retry,
     "Configuration value failed validation"},
    {:constraint_violation, 1202, :config, :validation, :medium, :fixed_delay,
     "Configuration constraint violated"},
    {:range_error, 1203, :config, :validation, :low, :fixed_delay,
     "Value outside acceptable range"},
    {:config_not_found, 1301, :config, :access, :high, :immediate, "Configuration not found"},
    {:config_update_forbidden, 1401, :config, :runtime, :medium, :fixed_delay,
     "Configuration update not allowed"},
    {:initialization_failed, 2101, :system, :initialization, :critical, :no_retry,
     "System initialization failed"},
    {:service_unavailable, 2102, :system, :initialization, :high, :immediate,
     "Required service unavailable"},
    {:resource_exhausted, 2201, :system, :resources, :high, :immediate,
     "System resources exhausted"},
    {:dependency_failed, 2301, :system, :dependencies, :high, :immediate,
     "Required dependency failed"},
    {:internal_error, 2401, :system, :runtime, :critical, :no_retry, "Internal system error"},
    {:serialization_failed, 3101, :data, :serialization, :medium, :fixed_delay,
     "Data serialization failed"},
    {:deserialization_failed, 3102, :data, :serialization, :medium, :fixed_delay,
     "Data deserialization failed"},
    {:type_mismatch, 3201, :data, :validation, :low, :fixed_delay, "Data type mismatch"},
    {:format_error, 3202, :data, :validation, :low, :fixed_delay, "Data format error"},
    {:validation_failed, 3203, :data, :validation, :medium, :fixed_delay,
     "Data validation failed"},
    {:invalid_input, 3204, :data, :validation, :low, :fixed_delay, "Invalid input provided"},
    {:data_corruption, 3301, :data, :corruption, :critical, :no_retry,
     "Data corruption detected"},
    {:data_not_found, 3401, :data, :not_found, :low, :fixed_delay, "Requested data not found"},
    {:network_error, 4101, :external, :network, :medium, :exponential_backoff,
     "Network communication error"},
    {:external_service_error, 4201, :external, :service, :medium, :fixed_delay,
     "External service error"},
    {:timeout, 4301, :external, :timeout, :medium, :exponential_backoff, "Operation timeout"},
    {:authentication_failed, 4401, :external, :auth, :high, :immediate, "Authentication failed"}
  ]

  @default_actions ["Check logs for details", "Review error context", "Contact support if needed"]

  describe "new/3 and the code table" do
    for {type, code, category, subcategory, severity, strategy, message} <- @table do
      test "#{type} -> #{code}" do
        e = Error.new(unquote(type))
        assert e.code == unquote(code)
        assert e.error_type == unquote(type)
        assert e.category == unquote(category)
        assert e.subcategory == unquote(subcategory)
        assert e.severity == unquote(severity)
        assert e.retry_strategy == unquote(strategy)
        assert e.message == unquote(message)
      end
    end

    test "unknown types get code 9999 and never raise" do
      for type <- [:anything_unknown, :external_error, :invalid_path, nil, "string", {:t}] do
        e = Error.new(type)
        assert e.code == 9999
        assert e.message == "Unknown error"
        assert {e.category, e.subcategory} == {:unknown, :unknown}
        assert e.severity == :medium
        assert e.retry_strategy == :fixed_delay
        assert e.recovery_actions == @default_actions
      end
    end

    test "defaults and options" do
      before = DateTime.utc_now()
      e = Error.new(:timeout)
      assert e.context == %{}
      assert e.correlation_id == nil
      assert e.stacktrace == nil
      assert DateTime.compare(e.timestamp, before) in [:gt, :eq]

      e = Error.new(:timeout, "custom", context: %{a: 1}, correlation_id: "cid")
      assert {e.message, e.context, e.correlation_id} == {"custom", %{a: 1}, "cid"}
      assert Error.new(:timeout, "").message == ""
      assert Error.new(:timeout, nil, context: nil).context == nil
    end

    test "the struct enforces the four required keys" do
      assert_raise ArgumentError, fn -> Code.eval_string("%ElixirScope.Foundation.Error{}") end
    end
  end

  describe "stacktrace formatting" do
    test "nil stays nil, [] stays []" do
      assert Error.new(:timeout, nil, stacktrace: nil).stacktrace == nil
      assert Error.new(:timeout, nil, stacktrace: []).stacktrace == []
    end

    test "MFA entries become maps, others inspect strings" do
      trace = [
        {MyMod, :fun, 2, [file: ~c"lib/my_mod.ex", line: 12]},
        {MyMod, :other, [:arg], []},
        "string_entry",
        {:atom_only},
        42
      ]

      assert Error.new(:timeout, nil, stacktrace: trace).stacktrace == [
               %{module: MyMod, function: :fun, arity: 2, file: ~c"lib/my_mod.ex", line: 12},
               %{module: MyMod, function: :other, arity: [:arg], file: nil, line: nil},
               "\"string_entry\"",
               "{:atom_only}",
               "42"
             ]
    end

    test "at most 10 entries are kept" do
      {:current_stacktrace, real} = Process.info(self(), :current_stacktrace)
      trace = List.duplicate(hd(real), 25)
      assert length(Error.new(:timeout, nil, stacktrace: trace).stacktrace) == 10
    end
  end

  describe "recovery actions" do
    @actions %{
      config_not_found: ["Check configuration file", "Verify configuration path"],
      invalid_config_value: [
        "Check configuration format",
        "Validate against schema",
        "Review documentation"
      ],
      service_unavailable: [
        "Check service health",
        "Verify network connectivity",
        "Review service logs"
      ],
      resource_exhausted: [
        "Check memory usage",
        "Review resource limits",
        "Scale resources if needed"
      ],
      network_error: ["Check network connectivity", "Retry with exponential backoff"],
      timeout: ["Increase timeout value", "Check network latency", "Review service performance"],
      data_corruption: ["Restore from backup", "Contact system administrator"]
    }

    test "per-type actions, in order" do
      for {type, _, _, _, _, _, _} <- @table do
        assert Error.new(type).recovery_actions == Map.get(@actions, type, @default_actions)
      end
    end

    test "an :operation in the context adds a review action" do
      e = Error.new(:validation_failed, nil, context: %{operation: "user_registration"})
      assert List.last(e.recovery_actions) == "Review user_registration implementation"
      assert length(e.recovery_actions) >= 3
      assert e.recovery_actions == @default_actions ++ ["Review user_registration implementation"]

      e = Error.new(:network_error, nil, context: %{operation: :fetch})
      assert e.recovery_actions == @actions.network_error ++ ["Review fetch implementation"]
      assert Error.new(:timeout, nil, context: %{op: 1}).recovery_actions == @actions.timeout

      # an operation without String.Chars does not make new/3 raise
      e = Error.new(:timeout, nil, context: %{operation: {:op, 1}})
      assert List.last(e.recovery_actions) == "Review {:op, 1} implementation"
    end
  end

  describe "retries and escalation" do
    test "exponential backoff delays for attempts 0..6" do
      for type <- [:network_error, :timeout] do
        e = Error.new(type)
        delays = Enum.map(0..6, &Error.retry_delay(e, &1))
        assert delays == [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]
        assert Enum.all?(delays, &is_integer/1)
      end
    end

    test "exponential backoff never exceeds 30 000 ms, even for huge attempts" do
      e = Error.new(:network_error)
      assert Error.retry_delay(e, 100) == 30_000
      assert Error.retry_delay(e, 1_000_000) == 30_000
    end

    test "fixed, immediate and no_retry" do
      for attempt <- 0..6 do
        assert Error.retry_delay(Error.new(:external_service_error), attempt) == 1000
        assert Error.retry_delay(Error.new(:resource_exhausted), attempt) == 0
        assert Error.retry_delay(Error.new(:internal_error), attempt) == :infinity
      end
    end

    test "retry strategy rule" do
      assert Error.new(:internal_error).severity == :critical
      assert Error.new(:internal_error).retry_strategy == :no_retry
      assert Error.new(:resource_exhausted).retry_strategy == :immediate
      assert Error.new(:external_service_error).retry_strategy == :fixed_delay
      assert Error.new(:invalid_config_value).retry_strategy == :no_retry
    end

    test "is_retryable?/1" do
      for {type, _, _, _, _, strategy, _} <- @table do
        assert Error.is_retryable?(Error.new(type)) == (strategy != :no_retry)
      end
    end

    test "should_escalate?/1 for high and critical" do
      for {type, _, _, _, severity, _, _} <- @table do
        assert Error.should_escalate?(Error.new(type)) == severity in [:high, :critical]
      end
    end

    test "a Types.Error is rejected with FunctionClauseError" do
      e = Types.Error.new(code: 1, error_type: :timeout, message: "m", severity: :high)
      assert_raise FunctionClauseError, fn -> Error.is_retryable?(e) end
      assert_raise FunctionClauseError, fn -> Error.retry_delay(e, 0) end
      assert_raise FunctionClauseError, fn -> Error.should_escalate?(e) end
    end
  end

  describe "to_string/1" do
    test "the documented example" do
      e = Error.new(:timeout, nil, context: %{a: 1, b: [1, 2, 3], c: 3, d: 4})

      assert Error.to_string(e) ==
               "[4301:timeout] Operation timeout | Context: %{a: 1, b: [1, ...], c: 3, ...} | Severity: medium"
    end

    test "no context part for an empty context" do
      assert Error.to_string(Error.new(:range_error, "too big")) ==
               "[1203:range_error] too big | Severity: low"
    end

    test "raises for a nil context" do
      assert_raise BadMapError, fn -> Error.to_string(Error.new(:timeout, nil, context: nil)) end
    end
  end

  describe "error_result/3 and wrap_error/4" do
    test "error_result wraps new/3" do
      assert {:error, %Error{error_type: :timeout, message: "m", context: %{a: 1}}} =
               Error.error_result(:timeout, "m", context: %{a: 1})
    end

    test "wrapping an Error keeps type, message and code" do
      {:error, original} = Error.error_result(:network_error, "down", context: %{host: "h"})

      assert {:error, wrapped} =
               Error.wrap_error({:error, original}, :service_unavailable, "outer",
                 context: %{layer: :api}
               )

      assert {wrapped.error_type, wrapped.message, wrapped.code} ==
               {:network_error, "down", 4101}

      assert wrapped.context == %{
               host: "h",
               wrapped_by: :service_unavailable,
               wrapper_message: "outer",
               wrapper_context: %{layer: :api}
             }
    end

    test "wrapping an Error without options gives an empty wrapper context" do
      {:error, wrapped} = Error.wrap_error(Error.error_result(:timeout), :x)
      assert wrapped.context == %{wrapped_by: :x, wrapper_message: nil, wrapper_context: %{}}
    end

    test "wrapping an Error with a nil context" do
      {:error, wrapped} = Error.wrap_error({:error, Error.new(:timeout, nil, context: nil)}, :x)
      assert wrapped.context.wrapped_by == :x
    end

    test "raw reasons become original_reason under the wrapper's type" do
      assert {:error, e} = Error.wrap_error({:error, :econnrefused}, :network_error, nil)
      assert e.error_type == :network_error
      assert e.message == "Network communication error"
      assert e.context == %{original_reason: :econnrefused}

      assert {:error, e} = Error.wrap_error({:error, "x"}, :timeout, "slow", context: %{a: 1})

      assert {e.message, e.context} == {"slow", %{a: 1, original_reason: "x"}}
    end

    test "a Types.Error reason is treated as a raw reason" do
      reason = Types.Error.new(code: 1, error_type: :y, message: "m", severity: :low)
      assert {:error, e} = Error.wrap_error({:error, reason}, :internal_error)
      assert %Error{error_type: :internal_error, context: %{original_reason: ^reason}} = e
    end

    test "non-error values pass through" do
      for value <- [:ok, {:ok, 1}, nil, {:error, 1, 2}, Error.new(:timeout)] do
        assert Error.wrap_error(value, :internal_error) == value
      end
    end
  end

  describe "collect_error_metrics/1 and from_native/2" do
    test "collect_error_metrics returns :ok" do
      assert Error.collect_error_metrics(Error.new(:timeout)) == :ok
      assert_raise FunctionClauseError, fn -> Error.collect_error_metrics(%{}) end
    end

    test "from_native maps kinds to Types.Error with the contract's codes" do
      for {kind, type, code, severity, category} <- [
            {:config_validation_failed, :validation_failed, 1001, :medium, :config},
            {:range_error, :range_error, 1004, :high, :config},
            {:validation_failed, :validation_failed, 2001, :high, :data},
            {:data_too_large, :data_too_large, 2003, :high, :data},
            {:internal_error, :internal_error, 2401, :critical, :system}
          ] do
        e = Error.from_native({kind, "detail"}, %{k: 1})
        assert %Types.Error{error_type: ^type, code: ^code, severity: ^severity} = e
        assert e.category == category
        assert {e.message, e.context} == {"detail", %{k: 1}}
      end
    end

    test "from_native defaults and unknown kinds" do
      e = Error.from_native({:no_such_kind_here, "d"})
      assert %Types.Error{error_type: :internal_error, code: 2401, context: %{}} = e
      assert_raise FunctionClauseError, fn -> Error.from_native(:not_a_tuple) end
    end
  end

  describe "random and hostile input (seeded)" do
    setup do
      :rand.seed(:exsss, {1, 2, 3})
      :ok
    end

    test "new/3 accepts any type, message and option values" do
      for _ <- 1..1500 do
        type = RandomTerms.term(2)
        message = Enum.random([nil, "m", RandomTerms.leaf()])
        context = Enum.random([%{}, nil, %{operation: RandomTerms.leaf()}, RandomTerms.term(2)])
        stacktrace = Enum.random([nil, [], RandomTerms.term(2)])
        opts = [context: context, correlation_id: RandomTerms.leaf(), stacktrace: stacktrace]

        if short_improper?(stacktrace) do
          assert_raise FunctionClauseError, fn -> Error.new(type, message, opts) end
        else
          e = Error.new(type, message, opts)
          if message, do: assert(e.message == message), else: assert(is_binary(e.message))
          assert is_integer(e.code) and is_list(e.recovery_actions)
          assert e.stacktrace == nil or (is_list(e.stacktrace) and length(e.stacktrace) <= 10)
          check_functions(e)
        end
      end
    end

    test "wrap_error/4 on random results" do
      for _ <- 1..1500 do
        result = RandomTerms.term(3)
        context = Enum.random([nil, %{w: 1}])

        case Error.wrap_error(result, :timeout, "w", context: context) do
          {:error, %Error{} = e} when elem(result, 0) == :error ->
            assert is_map(e.context)

          other ->
            assert other == result
            refute match?({:error, _}, result)
        end
      end
    end

    test "retry_delay/2 with any attempt" do
      errors = Enum.map(@table, fn row -> Error.new(elem(row, 0)) end)

      for _ <- 1..1000 do
        attempt = RandomTerms.leaf()
        e = Enum.random(errors)

        if e.retry_strategy == :exponential_backoff and not is_number(attempt) do
          assert_raise FunctionClauseError, fn -> Error.retry_delay(e, attempt) end
        else
          delay = Error.retry_delay(e, attempt)
          assert delay == :infinity or (is_integer(delay) and delay >= 0 and delay <= 30_000)
        end
      end
    end

    test "deep (10k levels) and large contexts and reasons" do
      for big <- [RandomTerms.deep(:map), RandomTerms.deep(:tuple) | RandomTerms.large()] do
        e = Error.new(:timeout, nil, context: %{big: big}, stacktrace: [big])
        assert e.context.big == big
        assert [entry] = e.stacktrace
        assert is_binary(entry)
        assert is_binary(Error.to_string(e))
        assert {:error, %Error{}} = Error.wrap_error({:error, big}, :timeout)
        assert {:error, %Error{}} = Error.wrap_error({:error, e}, :internal_error)
      end
    end
  end

  # Error.new raises only when the stacktrace is an improper list that ends
  # within the first 10 entries (Enum.take/2 reaches the bad tail).
  defp short_improper?(list) when is_list(list), do: improper_within?(list, 10)
  defp short_improper?(_), do: false

  defp improper_within?([], _n), do: false
  defp improper_within?(_list, 0), do: false
  defp improper_within?([_ | tail], n) when is_list(tail), do: improper_within?(tail, n - 1)
  defp improper_within?([_ | _tail], _n), do: true

  defp check_functions(e) do
    assert is_boolean(Error.is_retryable?(e))
    assert is_boolean(Error.should_escalate?(e))
    assert Error.collect_error_metrics(e) == :ok

    cond do
      not (printable?(e.message) and printable?(e.error_type)) ->
        # a message or type that cannot be interpolated: outside the contract
        :ok

      is_map(e.context) ->
        assert is_binary(Error.to_string(e))

      true ->
        assert_raise BadMapError, fn -> Error.to_string(e) end
    end
  end

  defp printable?(term) do
    is_binary("#{term}")
  rescue
    _ -> false
  end
end
