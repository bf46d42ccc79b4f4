defmodule ElixirScope.Foundation.Native.TermSizeTest do
  # Call tracing of Native is global per function: not async.
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.{Native, Utils}
  alias ElixirScope.Foundation.Test.NativeCalls
  alias ElixirScope.Foundation.TestSupport.RandomTerms
  alias ElixirScope.Foundation.Types.Event
  alias ElixirScope.Foundation.Validation.EventValidator

  defp kinds do
    f = fn x -> x end

    [
      :a,
      :élan,
      String.to_atom(String.duplicate("a", 255)),
      String.to_atom(String.duplicate("é", 255)),
      0,
      -1,
      255,
      256,
      2 ** 31,
      -(2 ** 31) - 1,
      2 ** 64,
      -(2 ** 200),
      2 ** 5000,
      0.0,
      -0.0,
      1.0e308,
      -1.0e-308,
      "",
      :binary.copy("x", 70_000),
      <<1::3>>,
      <<1, 2, 3, 4::5>>,
      [],
      [1 | 2],
      ~c"abc",
      Enum.to_list(1..70_000),
      {},
      {1, {2}},
      %{},
      Map.new(1..33, &{&1, &1}),
      self(),
      make_ref(),
      hd(Port.list()),
      f,
      fn -> f end,
      &Enum.map/2,
      {f, [self() | make_ref()], %{f => f}}
    ]
  end

  describe "term_size_small/1 and term_size_exact/1" do
    test "term_size_exact is :erlang.external_size/1 for every kind of term" do
      for term <- kinds() do
        assert Native.term_size_exact(term) == :erlang.external_size(term), inspect(term)
      end
    end

    test "term_size_small accepts a few thousand terms, refuses more and funs" do
      assert Native.term_size_small(%{a: [1, 2], b: "x"})
      assert Native.term_size_small(:binary.copy("x", 10_000_000))
      assert Native.term_size_small(Enum.to_list(1..1_000))
      assert Native.term_size_small(Map.new(1..300, &{&1, &1}))
      refute Native.term_size_small(Enum.to_list(1..5_000))
      refute Native.term_size_small(List.to_tuple(Enum.to_list(1..5_000)))
      refute Native.term_size_small(Map.new(1..5_000, &{&1, &1}))
      refute Native.term_size_small(RandomTerms.deep(:list, 100_000))
      refute Native.term_size_small({1, fn -> :ok end})
    end

    test "any term is a valid argument: hostile terms give a boolean and the exact size" do
      :rand.seed(:exsss, {1, 2, 3})

      terms =
        for(kind <- [:list, :map, :tuple, :improper], do: RandomTerms.deep(kind, 100_000)) ++
          for _ <- 1..500, do: RandomTerms.term(4)

      for term <- terms do
        assert is_boolean(Native.term_size_small(term))
        assert Native.term_size_exact(term) == :erlang.external_size(term)
      end
    end
  end

  describe "routing through the public API (docs/architecture.md, Scheduler safety)" do
    defp calls(fun), do: NativeCalls.traced(fun, "term_size_")
    defp event(data), do: %Event{event_id: 1, event_type: :test, timestamp: 1, data: data}

    test "small data uses the BIF after the bounded walk; big data the dirty NIF" do
      big = Enum.map(1..100_000, &{&1, "v"})

      assert {:ok, [:term_size_small]} = calls(fn -> EventValidator.validate(event(%{a: 1})) end)

      assert {{:error, %{context: %{size: size}}}, [:term_size_small, :term_size_exact]} =
               calls(fn -> EventValidator.validate_data_size(event(big)) end)

      assert size == :erlang.external_size(big)
      assert {:ok, []} = calls(fn -> EventValidator.validate(event(:binary.copy("x", 5_000))) end)

      assert {n, [:term_size_small, :term_size_exact]} = calls(fn -> Utils.deep_size(big) end)
      assert n == :erlang.external_size(big)
      assert {small, [:term_size_small]} = calls(fn -> Utils.deep_size([1, {2}]) end)
      assert small == :erlang.external_size([1, {2}])
    end
  end
end
