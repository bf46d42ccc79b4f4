defmodule ElixirScope.Foundation.Native.SerializeTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Native

  describe "serialize_small/2" do
    test "the bytes of term_to_binary for small terms, compressed or plain" do
      terms = [
        :a,
        %{a: 1, b: "x", c: [1, 2, 3]},
        %{pid: self(), ref: make_ref(), port: hd(Port.list()), float: 1.5, big: 2 ** 70},
        {String.duplicate("y", 2_000), ~c"chars", [1 | 2], -1, 300, 2 ** 40},
        Enum.to_list(1..500),
        ElixirScope.Foundation.Types.Event.new(event_type: :t, data: %{u: "é", l: [:x]})
      ]

      for term <- terms do
        assert Native.serialize_small(term, true) ==
                 {:ok, :erlang.term_to_binary(term, [:compressed])}

        assert Native.serialize_small(term, false) == {:ok, :erlang.term_to_binary(term)}
      end
    end

    test "false for big or unboundable terms" do
      refute Native.serialize_small(Enum.to_list(1..10_000), true)
      refute Native.serialize_small(:binary.copy("x", 100_000), true)
      refute Native.serialize_small(fn -> :ok end, true)
      refute Native.serialize_small(<<1::3>>, false)
      # The walk stops at its budget.
      refute Native.serialize_small(Enum.to_list(1..2_000_000), true)
    end
  end

  describe "serialize_dirty/2" do
    test "happy path: the bytes of term_to_binary, compressed or plain" do
      term = %{list: Enum.to_list(1..5_000), pid: self(), ref: make_ref(), f: &Enum.map/2}

      assert Native.serialize_dirty(term, true) ==
               {:ok, :erlang.term_to_binary(term, [:compressed])}

      assert Native.serialize_dirty(term, false) == {:ok, :erlang.term_to_binary(term)}
      # Tiny terms are kept plain, as the BIF does.
      assert Native.serialize_dirty(:a, true) == {:ok, :erlang.term_to_binary(:a)}
    end

    test "wrong argument types raise ArgumentError" do
      assert_raise ArgumentError, fn -> Native.serialize_dirty(:a, :yes) end
      assert_raise ArgumentError, fn -> Native.serialize_dirty(:a, 1) end
    end
  end
end
