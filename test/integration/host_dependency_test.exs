defmodule ElixirScope.Foundation.HostDependencyTest do
  # A fresh host project that lists this library as a path dependency must
  # compile (Elixir + the cargo-built NIF) and run. Part of the default run.
  use ExUnit.Case, async: true

  @moduletag :host_dependency
  @moduletag timeout: 900_000

  alias ElixirScope.Foundation.TestSupport.HostProject

  @uuid ~r/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
  setup do
    {:ok, dir: HostProject.tmp_dir("es_host")}
  end

  test "a host project with a path dependency compiles and runs the library", %{dir: dir} do
    write_host_project(dir)

    {output, status} = mix(dir, ["compile"])
    assert status == 0, "mix compile failed:\n#{output}"

    nif = Path.join([dir, "_build/dev/lib/elixir_scope_foundation/priv/native/foundation_nif.so"])
    assert File.regular?(nif), "the NIF was not installed in the host's build:\n#{output}"

    script = """
    IO.puts(ElixirScope.Foundation.Utils.generate_correlation_id())
    IO.puts("native_loaded=" <> to_string(Code.ensure_loaded?(ElixirScope.Foundation.Native)))
    """

    {output, status} = mix(dir, ["run", "-e", script])
    assert status == 0, "mix run failed:\n#{output}"

    lines = String.split(output, "\n", trim: true)
    assert Enum.any?(lines, &Regex.match?(@uuid, &1)), "no UUID in:\n#{output}"
    assert "native_loaded=true" in lines, "the NIF did not load in the host:\n#{output}"
  end

  defp write_host_project(dir) do
    HostProject.write_mix_project(dir)

    File.write!(Path.join(dir, "config/config.exs"), """
    import Config

    config :elixir_scope, test_mode: false
    """)
  end

  defp mix(dir, args), do: HostProject.mix(dir, args)
end
