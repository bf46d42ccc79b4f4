defmodule ElixirScope.Foundation.HostDependencyTest do
  # A fresh host project that lists this library as a path dependency must
  # compile (Elixir + the cargo-built NIF) and run. Part of the default run.
  use ExUnit.Case, async: true

  @moduletag :host_dependency
  @moduletag timeout: 900_000

  @project_root Path.expand("../..", __DIR__)
  @uuid ~r/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
  # seconds, per command (a cold cargo build of the NIF takes a few minutes)
  @command_timeout 600

  setup do
    dir = Path.join(System.tmp_dir!(), "es_host_#{System.unique_integer([:positive])}")
    File.mkdir_p!(Path.join(dir, "config"))
    on_exit(fn -> File.rm_rf!(dir) end)
    {:ok, dir: dir}
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
    File.write!(Path.join(dir, "mix.exs"), """
    defmodule HostApp.MixProject do
      use Mix.Project

      def project do
        [
          app: :host_app,
          version: "0.1.0",
          elixir: "~> 1.14",
          deps: [{:elixir_scope_foundation, path: #{inspect(@project_root)}}]
        ]
      end

      def application, do: [extra_applications: [:logger]]
    end
    """)

    File.write!(Path.join(dir, "config/config.exs"), """
    import Config

    config :elixir_scope, test_mode: false
    """)
  end

  # Runs mix in the host directory with MIX_ENV=dev, under coreutils'
  # `timeout` when available so a hung build cannot outlive the test.
  defp mix(dir, args) do
    mix = System.find_executable("mix") || flunk("mix is not on the PATH")
    env = [{"MIX_ENV", "dev"}, {"MIX_EXS", nil}, {"MIX_BUILD_PATH", nil}, {"MIX_DEPS_PATH", nil}]
    opts = [cd: dir, env: env, stderr_to_stdout: true]

    case System.find_executable("timeout") do
      nil -> System.cmd(mix, args, opts)
      timeout -> System.cmd(timeout, [to_string(@command_timeout), mix | args], opts)
    end
  end
end
