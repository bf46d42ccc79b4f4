defmodule ElixirScope.Foundation.NativeTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Native

  test "the native library is loaded and matches the build" do
    assert Native.native_version() == "0.1.0"
  end
end
