defmodule ElixirScope.Foundation.TestSupport.HostProject do
  @moduledoc false
  # Builds and runs a throw-away host project that lists this library as a
  # path dependency (used by the integration tests).

  @project_root Path.expand("../..", __DIR__)
  # seconds, per command (a cold cargo build of the NIF takes a few minutes)
  @command_timeout 600

  @doc "A fresh empty directory (with `config/`), removed when the test exits."
  @spec tmp_dir(String.t()) :: String.t()
  def tmp_dir(prefix) do
    dir = Path.join(System.tmp_dir!(), "#{prefix}_#{System.unique_integer([:positive])}")
    File.mkdir_p!(Path.join(dir, "config"))
    ExUnit.Callbacks.on_exit(fn -> File.rm_rf!(dir) end)
    dir
  end

  @doc "Writes the host's `mix.exs` (app `:host_app`, this library as a path dependency)."
  @spec write_mix_project(String.t()) :: :ok
  def write_mix_project(dir) do
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
  end

  @doc """
  Runs mix in the host directory with `MIX_ENV=env`, under coreutils'
  `timeout` when available so a hung build cannot outlive the test.
  Returns `{output, exit_status}`.
  """
  @spec mix(String.t(), [String.t()], String.t()) :: {String.t(), non_neg_integer()}
  def mix(dir, args, env \\ "dev") do
    mix = System.find_executable("mix") || ExUnit.Assertions.flunk("mix is not on the PATH")
    env = [{"MIX_ENV", env}, {"MIX_EXS", nil}, {"MIX_BUILD_PATH", nil}, {"MIX_DEPS_PATH", nil}]
    opts = [cd: dir, env: env, stderr_to_stdout: true]

    case System.find_executable("timeout") do
      nil -> System.cmd(mix, args, opts)
      timeout -> System.cmd(timeout, [to_string(@command_timeout), mix | args], opts)
    end
  end
end
