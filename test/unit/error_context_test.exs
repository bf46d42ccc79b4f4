defmodule ElixirScope.Foundation.ErrorContextTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.{Error, ErrorContext}
  alias ElixirScope.Foundation.TestSupport.RandomTerms
  import ElixirScope.Foundation.TestSupport.Eventually
  alias ElixirScope.Foundation.Types

  doctest ErrorContext

  @uuid ~r/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

  describe "new/3" do
    test "builds a context with one initial breadcrumb" do
      before = System.monotonic_time(:millisecond)
      ctx = ErrorContext.new(FirstModule, :first_function)
      after_ms = System.monotonic_time(:millisecond)

      assert %ErrorContext{module: FirstModule, function: :first_function} = ctx
      assert is_integer(ctx.operation_id) and ctx.operation_id > 0
      assert ctx.correlation_id =~ @uuid
      assert before <= ctx.start_time and ctx.start_time <= after_ms
      assert ctx.metadata == %{}
      assert ctx.parent_context == nil

      assert [%{module: FirstModule, function: :first_function, timestamp: ts, metadata: %{}}] =
               ctx.breadcrumbs

      assert before <= ts and ts <= after_ms
    end

    test "accepts correlation_id, metadata and parent_context" do
      parent = ErrorContext.new(P, :p)

      ctx =
        ErrorContext.new(M, :f, correlation_id: "cid", metadata: %{a: 1}, parent_context: parent)

      assert ctx.correlation_id == "cid"
      assert ctx.metadata == %{a: 1}
      assert ctx.parent_context == parent
    end

    test "nil options fall back to defaults" do
      ctx = ErrorContext.new(M, :f, correlation_id: nil, metadata: nil)
      assert ctx.correlation_id =~ @uuid
      assert ctx.metadata == %{}
    end

    test "operation and correlation ids differ between contexts" do
      a = ErrorContext.new(M, :f)
      b = ErrorContext.new(M, :f)
      assert a.operation_id != b.operation_id
      assert a.correlation_id != b.correlation_id
    end

    test "unknown options are ignored, non-keyword options raise" do
      assert %ErrorContext{metadata: %{}} = ErrorContext.new(M, :f, bogus: 1)
      assert_raise ArgumentError, fn -> ErrorContext.new(M, :f, [[1]]) end
      assert_raise FunctionClauseError, fn -> ErrorContext.new(M, :f, :bogus) end
    end
  end

  describe "child_context/4, add_breadcrumb/4, add_metadata/2" do
    test "a child inherits correlation id, metadata and breadcrumbs" do
      parent = ErrorContext.new(ParentModule, :parent_fn, metadata: %{user: 1, step: :a})
      child = ErrorContext.child_context(parent, ChildModule, :child_fn, %{step: :b})

      assert child.correlation_id == parent.correlation_id
      assert child.operation_id != parent.operation_id
      assert child.metadata == %{user: 1, step: :b}
      assert child.parent_context == parent
      assert {child.module, child.function} == {ChildModule, :child_fn}
      assert length(child.breadcrumbs) == 2
      assert Enum.at(child.breadcrumbs, 0) == hd(parent.breadcrumbs)

      assert %{module: ChildModule, function: :child_fn, metadata: %{step: :b}} =
               List.last(child.breadcrumbs)
    end

    test "child metadata defaults to the parent's" do
      parent = ErrorContext.new(P, :p, metadata: %{k: 1})
      assert ErrorContext.child_context(parent, C, :c).metadata == %{k: 1}
    end

    test "add_breadcrumb appends at the end" do
      ctx =
        ErrorContext.new(A, :a)
        |> ErrorContext.add_breadcrumb(B, :b)
        |> ErrorContext.add_breadcrumb(C, :c, %{n: 3})

      assert Enum.map(ctx.breadcrumbs, &{&1.module, &1.function, &1.metadata}) ==
               [{A, :a, %{}}, {B, :b, %{}}, {C, :c, %{n: 3}}]

      assert Enum.map(ctx.breadcrumbs, & &1.timestamp) ==
               Enum.sort(Enum.map(ctx.breadcrumbs, & &1.timestamp))
    end

    test "add_metadata merges maps only" do
      ctx = ErrorContext.new(A, :a, metadata: %{x: 1, y: 1})
      assert ErrorContext.add_metadata(ctx, %{y: 2, z: 3}).metadata == %{x: 1, y: 2, z: 3}
      assert_raise FunctionClauseError, fn -> ErrorContext.add_metadata(ctx, y: 2) end
      assert_raise FunctionClauseError, fn -> ErrorContext.add_breadcrumb(ctx, B, :b, :meta) end
    end
  end

  describe "with_context/2" do
    test "returns the function's result unchanged and clears the key" do
      ctx = ErrorContext.new(M, :f)
      assert ErrorContext.with_context(ctx, fn -> {:ok, 1} end) == {:ok, 1}
      assert ErrorContext.with_context(ctx, fn -> {:error, :x} end) == {:error, :x}
      assert ErrorContext.with_context(ctx, fn -> :plain end) == :plain
      assert Process.get(:error_context) == nil
    end

    test "stores the context under :error_context while running" do
      ctx = ErrorContext.new(M, :f)

      seen =
        ErrorContext.with_context(ctx, fn ->
          {ErrorContext.get_current_context(), Process.get(:error_context)}
        end)

      assert seen == {ctx, ctx}
      assert ErrorContext.get_current_context() == nil
    end

    test "turns a raise into an internal_error with the operation context" do
      ctx = ErrorContext.new(M, :f, metadata: %{req: 7})

      assert {:error, %Error{} = error} =
               ErrorContext.with_context(ctx, fn -> raise ArgumentError, "bad thing" end)

      assert error.error_type == :internal_error
      assert error.code == 2401
      assert error.severity == :critical
      assert error.retry_strategy == :no_retry
      assert error.message =~ "bad thing"
      assert error.message == "Exception in operation: bad thing"
      assert error.correlation_id == ctx.correlation_id
      assert error.context.exception_type == ArgumentError
      assert error.context.exception_message == "bad thing"

      op = error.context.operation_context
      assert op.operation_id == ctx.operation_id
      assert op.correlation_id == ctx.correlation_id
      assert op.metadata == %{req: 7}
      assert op.breadcrumbs == ctx.breadcrumbs
      assert is_integer(op.duration_ns) and op.duration_ns >= 0

      assert is_list(error.stacktrace) and error.stacktrace != []
      assert length(error.stacktrace) <= 10
      assert Enum.all?(error.stacktrace, &is_binary/1)
      assert Process.get(:error_context) == nil
    end

    test "Erlang errors are rescued too" do
      ctx = ErrorContext.new(M, :f)

      assert {:error, %Error{context: %{exception_type: ArithmeticError}}} =
               ErrorContext.with_context(ctx, fn -> 1 / Enum.random([0]) end)
    end

    test "throw and exit propagate and leave the key set" do
      ctx = ErrorContext.new(M, :f)
      assert catch_throw(ErrorContext.with_context(ctx, fn -> throw(:ball) end)) == :ball
      assert Process.get(:error_context) == ctx
      Process.delete(:error_context)

      assert catch_exit(ErrorContext.with_context(ctx, fn -> exit(:bye) end)) == :bye
      assert Process.get(:error_context) == ctx
      Process.delete(:error_context)
    end

    test "nesting does not restore the outer context (original behaviour)" do
      outer = ErrorContext.new(Outer, :o)
      inner = ErrorContext.new(Inner, :i)

      after_inner =
        ErrorContext.with_context(outer, fn ->
          ErrorContext.with_context(inner, fn -> :ok end)
          ErrorContext.get_current_context()
        end)

      assert after_inner == nil
    end
  end

  describe "run/2 (explicit context)" do
    test "passes the context and returns the result unchanged" do
      ctx = ErrorContext.new(M, :f)
      assert ErrorContext.run(ctx, fn c -> {:ok, c} end) == {:ok, ctx}
      assert ErrorContext.run(ctx, fn _ -> {:error, :x} end) == {:error, :x}
    end

    test "never touches the process dictionary" do
      ctx = ErrorContext.new(M, :f)
      sentinel = ErrorContext.new(Sentinel, :s)
      Process.put(:error_context, sentinel)

      inside = ErrorContext.run(ctx, fn _ -> ErrorContext.get_current_context() end)
      assert inside == sentinel
      assert {:error, _} = ErrorContext.run(ctx, fn _ -> raise "x" end)
      assert Process.get(:error_context) == sentinel
      Process.delete(:error_context)

      keys_before = Process.get_keys()
      ErrorContext.run(ctx, fn _ -> :ok end)
      assert Process.get_keys() == keys_before
    end

    test "a raise gives the same error shape as with_context/2" do
      ctx = ErrorContext.new(M, :f, metadata: %{a: 1})
      {:error, via_run} = ErrorContext.run(ctx, fn _ -> raise KeyError, key: :k end)
      {:error, via_pdict} = ErrorContext.with_context(ctx, fn -> raise KeyError, key: :k end)

      for field <- [:error_type, :code, :message, :severity, :correlation_id, :retry_strategy] do
        assert Map.fetch!(via_run, field) == Map.fetch!(via_pdict, field)
      end

      assert Map.drop(via_run.context, [:operation_context]) ==
               Map.drop(via_pdict.context, [:operation_context])

      assert Map.delete(via_run.context.operation_context, :duration_ns) ==
               Map.delete(via_pdict.context.operation_context, :duration_ns)
    end

    test "nested explicit contexts do not interfere" do
      parent = ErrorContext.new(P, :p)

      result =
        ErrorContext.run(parent, fn p ->
          child = ErrorContext.child_context(p, C, :c)
          inner = ErrorContext.run(child, fn c -> c.function end)
          {inner, p.function}
        end)

      assert result == {:c, :p}
    end

    test "throw and exit propagate" do
      ctx = ErrorContext.new(M, :f)
      assert catch_throw(ErrorContext.run(ctx, fn _ -> throw(:t) end)) == :t
      assert catch_exit(ErrorContext.run(ctx, fn _ -> exit(:e) end)) == :e
      assert_raise FunctionClauseError, fn -> ErrorContext.run(ctx, fn -> :arity0 end) end
    end
  end

  describe "enhance_error/2" do
    setup do
      {:ok, ctx: ErrorContext.new(M, :f, metadata: %{m: 1})}
    end

    test "adds operation_context (with metadata) to an Error", %{ctx: ctx} do
      error = Error.new(:timeout, nil, context: %{orig: true})
      enhanced = ErrorContext.enhance_error(error, ctx)

      assert enhanced.context.orig == true
      assert enhanced.context.operation_context.operation_id == ctx.operation_id
      assert enhanced.context.operation_context.metadata == %{m: 1}
      assert enhanced.correlation_id == ctx.correlation_id
      assert {enhanced.code, enhanced.message} == {error.code, error.message}
    end

    test "keeps an existing correlation id", %{ctx: ctx} do
      error = Error.new(:timeout, nil, correlation_id: "mine")
      assert ErrorContext.enhance_error(error, ctx).correlation_id == "mine"
    end

    test "an Error with a nil context does not crash", %{ctx: ctx} do
      error = Error.new(:timeout, nil, context: nil)
      assert %{operation_context: _} = ErrorContext.enhance_error(error, ctx).context
    end

    test "{:error, %Error{}} stays a tuple", %{ctx: ctx} do
      assert {:error, %Error{error_type: :timeout, context: %{operation_context: _}}} =
               ErrorContext.enhance_error({:error, Error.new(:timeout)}, ctx)
    end

    test "{:error, reason} becomes an external_error", %{ctx: ctx} do
      assert {:error, %Error{} = e} = ErrorContext.enhance_error({:error, :econnrefused}, ctx)
      assert e.error_type == :external_error
      assert e.code == 9999
      assert e.message == "External operation failed"
      assert e.correlation_id == ctx.correlation_id
      assert e.context.original_reason == :econnrefused
      refute Map.has_key?(e.context.operation_context, :metadata)
      assert e.context.operation_context.operation_id == ctx.operation_id
    end

    test "a Types.Error in a tuple is treated as a raw reason", %{ctx: ctx} do
      types_error = Types.Error.new(code: 1, error_type: :x, message: "m", severity: :low)
      assert {:error, e} = ErrorContext.enhance_error({:error, types_error}, ctx)
      assert e.error_type == :external_error
      assert e.context.original_reason == types_error
    end

    test "anything else is returned unchanged", %{ctx: ctx} do
      types_error = Types.Error.new(code: 1, error_type: :x, message: "m", severity: :low)

      for other <- [:ok, {:ok, 1}, types_error, nil, {:error, :a, :b}, "text"] do
        assert ErrorContext.enhance_error(other, ctx) == other
      end
    end
  end

  describe "format_breadcrumbs/1 and get_operation_duration/1" do
    test "joins crumbs with arrows and relative ages" do
      ctx =
        ErrorContext.new(FirstModule, :first_function)
        |> ErrorContext.add_breadcrumb(SecondModule, :second_function)

      text = ErrorContext.format_breadcrumbs(ctx)
      assert text =~ "FirstModule.first_function"
      assert text =~ "SecondModule.second_function"
      assert text =~ "ago"
      age = ~S"\(\d+(\.\d)?(ns|μs|ms|s) ago\)"

      assert text =~
               ~r/^Elixir\.FirstModule\.first_function #{age} -> Elixir\.SecondModule\.second_function #{age}$/u
    end

    test "no crumbs gives an empty string" do
      ctx = %{ErrorContext.new(M, :f) | breadcrumbs: []}
      assert ErrorContext.format_breadcrumbs(ctx) == ""
    end

    test "non-printable module terms are inspected, not raised on" do
      ctx = ErrorContext.new(%{not: :a_module}, {:f, 1})
      assert ErrorContext.format_breadcrumbs(ctx) =~ "%{not: :a_module}.{:f, 1} ("
    end

    test "the duration is in milliseconds and grows" do
      ctx = ErrorContext.new(M, :f)
      Process.sleep(1)
      first = ErrorContext.get_operation_duration(ctx)
      assert first > 0
      Process.sleep(5)
      assert ErrorContext.get_operation_duration(ctx) > first
      assert ErrorContext.get_operation_duration(ctx) < 60_000
    end
  end

  describe "add_context/3" do
    setup do
      {:ok, ctx: ErrorContext.new(M, :f, metadata: %{m: 1})}
    end

    test "successes pass through", %{ctx: ctx} do
      assert ErrorContext.add_context(:ok, ctx) == :ok
      assert ErrorContext.add_context({:ok, 5}, %{a: 1}) == {:ok, 5}
    end

    test "Error + ErrorContext: enhanced, then additional info merged", %{ctx: ctx} do
      {:error, e} = ErrorContext.add_context({:error, Error.new(:timeout)}, ctx, %{extra: 1})
      assert e.context.extra == 1
      assert e.context.operation_context.metadata == %{m: 1}
      assert e.correlation_id == ctx.correlation_id
    end

    test "Error + map: map and info merged into the context" do
      error = Error.new(:timeout, nil, context: %{a: 0, keep: true})
      {:error, e} = ErrorContext.add_context({:error, error}, %{a: 1, b: 1}, %{b: 2})
      assert e.context == %{a: 1, b: 2, keep: true}
      assert e.error_type == :timeout
    end

    test "reason + ErrorContext: external_error without correlation id", %{ctx: ctx} do
      {:error, e} = ErrorContext.add_context({:error, :boom}, ctx, %{info: 1})
      assert e.error_type == :external_error and e.code == 9999
      assert e.correlation_id == nil
      assert e.context.info == 1
      assert e.context.original_reason == :boom
      assert e.context.operation_context.metadata == %{m: 1}
    end

    test "reason + map: external_error with merged context" do
      {:error, e} = ErrorContext.add_context({:error, :boom}, %{a: 1, b: 1}, %{b: 2})
      assert e.context == %{a: 1, b: 2, original_reason: :boom}
      assert e.message == "External operation failed"
    end

    test "other combinations raise FunctionClauseError", %{ctx: ctx} do
      assert_raise FunctionClauseError, fn -> ErrorContext.add_context(:other, ctx) end
      assert_raise FunctionClauseError, fn -> ErrorContext.add_context({:error, :x}, :ctx) end
      assert_raise FunctionClauseError, fn -> ErrorContext.add_context({:error, :x}, ctx, :i) end
      assert_raise FunctionClauseError, fn -> ErrorContext.add_context({:ok, 1, 2}, %{}) end
    end
  end

  describe "duration gauge" do
    test "with_context/2 and run/2 record [:foundation, :operations, :duration]" do
      before = gauge_count()
      assert ErrorContext.with_context(ErrorContext.new(M, :f), fn -> :ok end) == :ok
      assert ErrorContext.run(ErrorContext.new(M, :f), fn _ -> :ok end) == :ok
      assert eventually(fn -> gauge_count() >= before + 2 end, 1_000)
    end
  end

  defp gauge_count do
    telemetry = ElixirScope.Foundation.Telemetry

    with {:ok, metrics} <- telemetry.get_metrics(),
         %{count: count} when is_integer(count) <-
           get_in(metrics, [:foundation, :operations, :duration]) do
      count
    else
      _ -> 0
    end
  rescue
    _ -> 0
  end

  describe "random and hostile input (seeded)" do
    setup do
      :rand.seed(:exsss, {1, 2, 3})
      {:ok, ctx: ErrorContext.new(M, :f)}
    end

    test "enhance_error/2 and add_context/3 on random results", %{ctx: ctx} do
      for _ <- 1..1500 do
        result = RandomTerms.term(3)
        target = Enum.random([ctx, RandomTerms.term(2)])
        info = Enum.random([%{}, %{i: 1}, RandomTerms.term(1)])

        check_enhance(result, ctx)
        check_add_context(result, target, info)
      end
    end

    test "with_context/2 and run/2 with random results and exceptions", %{ctx: ctx} do
      for _ <- 1..500 do
        value = RandomTerms.term(3)
        assert ErrorContext.with_context(ctx, fn -> value end) == value
        assert ErrorContext.run(ctx, fn _ -> value end) == value

        raiser = random_raiser(value)

        assert {:error, %Error{error_type: :internal_error} = e} =
                 ErrorContext.with_context(ctx, raiser)

        assert String.starts_with?(e.message, "Exception in operation: ")

        assert {:error, %Error{error_type: :internal_error}} =
                 ErrorContext.run(ctx, fn _ -> raiser.() end)

        assert Process.get(:error_context) == nil
      end
    end

    test "contexts built from random terms", %{ctx: ctx} do
      for _ <- 1..500 do
        mod = RandomTerms.term(1)
        fun = RandomTerms.term(1)
        meta = RandomTerms.term(2)

        built = ErrorContext.new(mod, fun, metadata: if(is_map(meta), do: meta, else: nil))
        assert is_binary(ErrorContext.format_breadcrumbs(built))

        if is_map(meta) do
          child = ErrorContext.child_context(built, mod, fun, meta)
          assert length(child.breadcrumbs) == 2
          assert ErrorContext.add_metadata(ctx, meta).metadata == Map.merge(ctx.metadata, meta)
        else
          assert_raise FunctionClauseError, fn ->
            ErrorContext.child_context(built, mod, fun, meta)
          end

          assert_raise FunctionClauseError, fn -> ErrorContext.add_metadata(ctx, meta) end
        end

        check_new_opts(RandomTerms.term(2))
      end
    end

    test "deep (10k levels) and large metadata and reasons", %{ctx: ctx} do
      for big <- [RandomTerms.deep(:map), RandomTerms.deep(:list), hd(RandomTerms.large())] do
        meta = %{big: big}
        ctx2 = ErrorContext.add_metadata(ctx, meta) |> ErrorContext.add_breadcrumb(B, :b, meta)
        assert {:error, e} = ErrorContext.with_context(ctx2, fn -> raise "deep" end)
        assert e.context.operation_context.metadata.big == big
        assert {:error, e} = ErrorContext.enhance_error({:error, big}, ctx2)
        assert e.context.original_reason == big
        assert is_binary(ErrorContext.format_breadcrumbs(ctx2))
        assert {:error, _} = ErrorContext.add_context({:error, big}, %{a: big}, %{b: big})
      end
    end
  end

  defp check_enhance({:error, %Error{}} = result, ctx) do
    assert {:error, %Error{context: %{operation_context: _}}} =
             ErrorContext.enhance_error(result, ctx)
  end

  defp check_enhance({:error, reason} = result, ctx) do
    assert {:error, %Error{error_type: :external_error, context: %{original_reason: ^reason}}} =
             ErrorContext.enhance_error(result, ctx)
  end

  defp check_enhance(other, ctx), do: assert(ErrorContext.enhance_error(other, ctx) == other)

  defp check_add_context(result, target, info) do
    valid_target = is_map(target) and is_map(info)

    case result do
      :ok ->
        assert ErrorContext.add_context(result, target, info) == :ok

      {:ok, _} ->
        assert ErrorContext.add_context(result, target, info) == result

      {:error, _} when valid_target ->
        assert {:error, %Error{}} = ErrorContext.add_context(result, target, info)

      _ ->
        assert_raise FunctionClauseError, fn -> ErrorContext.add_context(result, target, info) end
    end
  end

  defp check_new_opts(opts) do
    valid? = Keyword.keyword?(opts)

    cond do
      valid? -> assert %ErrorContext{} = ErrorContext.new(M, :f, opts)
      is_list(opts) -> assert_raise ArgumentError, fn -> ErrorContext.new(M, :f, opts) end
      true -> assert_raise FunctionClauseError, fn -> ErrorContext.new(M, :f, opts) end
    end
  end

  defp random_raiser(value) do
    Enum.random([
      fn -> raise ArgumentError, inspect(value, limit: 5) end,
      fn -> :erlang.error({:custom, value}) end,
      fn -> :erlang.error(value) end,
      fn -> Map.fetch!(%{}, value) end,
      fn -> elem(Enum.random([{}]), 0) end,
      fn -> raise RuntimeError end
    ])
  end
end
