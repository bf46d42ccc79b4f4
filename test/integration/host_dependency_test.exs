defmodule ElixirScope.Foundation.HostDependencyTest do
  # A fresh host project that lists this library as a path dependency must
  # compile (Elixir + the cargo-built NIF) and run. Part of the default run.
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Test.HostProject

  @moduletag :host_dependency
  @moduletag timeout: 900_000

  @uuid ~r/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

  setup do
    dir = Path.join(System.tmp_dir!(), "es_host_#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm_rf!(dir) end)
    {:ok, dir: dir}
  end

  test "a host project with a path dependency compiles and runs the library", %{dir: dir} do
    HostProject.write!(dir)

    {output, status} = HostProject.mix(dir, ["compile"])
    assert status == 0, "mix compile failed:\n#{output}"
    assert output =~ "Compiling NIF crate foundation_nif", "no cargo progress shown:\n#{output}"

    nif = Path.join([dir, "_build/dev/lib/elixir_scope_foundation/priv/native/foundation_nif.so"])
    assert File.regular?(nif), "the NIF was not installed in the host's build:\n#{output}"
    # a dependency build leaves the test-only NIF (and its allocator) out
    refute File.read!(nif) =~ "native_heap_bytes"

    script = """
    IO.puts(ElixirScope.Foundation.Utils.generate_correlation_id())
    IO.puts("native_loaded=" <> to_string(Code.ensure_loaded?(ElixirScope.Foundation.Native)))
    """

    {output, status} = HostProject.mix(dir, ["run", "-e", script])
    assert status == 0, "mix run failed:\n#{output}"

    lines = String.split(output, "\n", trim: true)
    assert Enum.any?(lines, &Regex.match?(@uuid, &1)), "no UUID in:\n#{output}"
    assert "native_loaded=true" in lines, "the NIF did not load in the host:\n#{output}"

    # configured under the library's own app name: Mix has nothing to warn about
    refute output =~ "You have configured application", output
  end
end
