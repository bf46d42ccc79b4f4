defmodule ElixirScope.Foundation.Native.SerializeTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Native

  describe "serialize_fits/1" do
    test "true for small terms, false for big or unboundable ones" do
      assert Native.serialize_fits(%{a: 1, b: "x", c: [1, 2, 3]})
      refute Native.serialize_fits(Enum.to_list(1..10_000))
      refute Native.serialize_fits(:binary.copy("x", 100_000))
      refute Native.serialize_fits(fn -> :ok end)
      refute Native.serialize_fits(<<1::3>>)
    end

    test "a long list is declined (the walk stops at the budget)" do
      refute Native.serialize_fits(Enum.to_list(1..2_000_000))
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
