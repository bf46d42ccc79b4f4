defmodule ElixirScope.Foundation.Native.DeserializeTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Native
  alias ElixirScope.Foundation.Native.Route

  describe "native_constants/0" do
    test "the normal-scheduler byte budget comes from the NIF, as Route reads it" do
      assert %{normal_bytes: bytes} = Native.native_constants()
      assert bytes == 64 * 1024
      assert Route.normal_bytes() == bytes
    end

    test "Route.dirty/2 calls the twin only on :dirty; Route.fits/3 picks by the check" do
      assert Route.dirty(:dirty, fn -> :twin end) == :twin
      assert Route.dirty({:ok, 1}, fn -> flunk("twin called") end) == {:ok, 1}
      assert Route.fits(true, fn -> :normal end, fn -> :twin end) == :normal
      assert Route.fits(false, fn -> :normal end, fn -> :twin end) == :twin
    end
  end

  describe "deserialize_dirty/1" do
    test "happy path: the term of binary_to_term(_, [:safe]), compressed or plain" do
      term = %{list: Enum.to_list(1..5_000), pid: self(), ref: make_ref(), f: &Enum.map/2}
      compressed = :erlang.term_to_binary(term, [:compressed])
      assert <<131, 80, _::binary>> = compressed

      for bin <- [compressed, :erlang.term_to_binary(term), compressed <> "after"] do
        assert Native.deserialize_dirty(bin) == {:ok, :erlang.binary_to_term(bin, [:safe])}
      end

      assert Native.deserialize_dirty(:erlang.term_to_binary(:a)) == {:ok, :a}
    end

    test "what the BIF rejects -> {:invalid_input, detail}" do
      packed = :erlang.term_to_binary(Enum.to_list(1..5_000), [:compressed])
      unknown = <<131, 100, 0, 24, "h3_native_unknown_atom_x">>

      for bin <- [<<>>, "garbage", <<131>>, binary_part(packed, 0, 100), unknown] do
        assert_raise ArgumentError, fn -> :erlang.binary_to_term(bin, [:safe]) end
        assert {:error, {:invalid_input, detail}} = Native.deserialize_dirty(bin)
        assert detail == "invalid or unsafe external representation of a term"
      end

      assert_raise ArgumentError, fn -> String.to_existing_atom("h3_native_unknown_atom_x") end
    end

    test "wrong argument types raise ArgumentError" do
      for arg <- [:a, 1, <<1::3>>, [131, 97, 1], {<<131, 97, 1>>}] do
        assert_raise ArgumentError, fn -> Native.deserialize_dirty(arg) end
      end
    end
  end
end
