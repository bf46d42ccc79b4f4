defmodule ElixirScope.Foundation.Test.HostProject do
  @moduledoc """
  A throwaway host application, in a temporary directory, that lists this
  library as a path dependency; and `mix` runs in it with a controlled
  environment (MIX_ENV=dev, no inherited prebuilt/toolchain variables).
  """

  @project_root Path.expand("../..", __DIR__)
  # seconds, per command (a cold cargo build of the NIF takes a few minutes)
  @command_timeout 600

  @doc "The root of this library's repository."
  @spec project_root() :: Path.t()
  def project_root, do: @project_root

  @doc "A fresh empty directory (with `config/`), removed when the test exits."
  @spec tmp_dir(String.t()) :: Path.t()
  def tmp_dir(prefix) do
    dir = Path.join(System.tmp_dir!(), "#{prefix}_#{System.unique_integer([:positive])}")
    File.mkdir_p!(Path.join(dir, "config"))
    ExUnit.Callbacks.on_exit(fn -> File.rm_rf!(dir) end)
    dir
  end

  @doc """
  Writes `mix.exs` and config into `dir`. The host configures the library
  under `:elixir_scope_foundation` (no Mix warning); `config/runtime.exs`
  adds an invalid legacy `:elixir_scope` setting when `HOST_BAD_CONFIG=1`.
  """
  @spec write!(Path.t()) :: :ok
  def write!(dir) do
    File.mkdir_p!(Path.join(dir, "config"))

    File.write!(Path.join(dir, "mix.exs"), """
    defmodule HostApp.MixProject do
      use Mix.Project

      def project do
        [
          app: :host_app,
          version: "0.1.0",
          elixir: "~> 1.14",
          deps: [{:elixir_scope_foundation, path: #{inspect(@project_root)}}],
          releases: [host_app: [include_erts: false]]
        ]
      end

      def application, do: [extra_applications: [:logger]]
    end
    """)

    File.write!(Path.join(dir, "config/config.exs"), """
    import Config

    config :elixir_scope_foundation, test_mode: false
    """)

    File.write!(Path.join(dir, "config/runtime.exs"), """
    import Config

    if System.get_env("HOST_BAD_CONFIG") == "1" do
      config :elixir_scope, ai: [planning: [sampling_rate: 7]]
    end
    """)
  end

  @doc """
  Runs `mix args` in `dir` (MIX_ENV=dev unless `env` sets it) with `env` added, under coreutils'
  `timeout` when available so a hung build cannot outlive the test.
  """
  @spec mix(Path.t(), [String.t()], [{String.t(), String.t() | nil}]) ::
          {String.t(), non_neg_integer()}
  def mix(dir, args, env \\ []) do
    mix = System.find_executable("mix") || raise "mix is not on the PATH"

    base = [
      {"MIX_ENV", "dev"},
      {"MIX_EXS", nil},
      {"MIX_BUILD_PATH", nil},
      {"MIX_DEPS_PATH", nil},
      {"ELIXIR_SCOPE_FOUNDATION_PREBUILT", nil},
      {"ELIXIR_SCOPE_FOUNDATION_BUILD", nil},
      {"ELIXIR_SCOPE_FOUNDATION_NIF_FEATURES", nil},
      {"FOUNDATION_NIF_SKIP", nil},
      {"CARGO", nil},
      {"RUSTC", nil}
    ]

    base = Enum.reject(base, fn {key, _} -> List.keymember?(env, key, 0) end)
    run(dir, [mix | args], Enum.concat(base, env))
  end

  @doc "Runs an executable `argv` in `dir` with `env`, as `mix/3` does."
  @spec run(Path.t(), [String.t()], [{String.t(), String.t() | nil}]) ::
          {String.t(), non_neg_integer()}
  def run(dir, [exe | args], env) do
    path = List.keyfind(env, "PATH", 0, {"PATH", System.get_env("PATH")}) |> elem(1)

    timeout =
      case :os.find_executable(~c"timeout", String.to_charlist(path)) do
        false -> nil
        found -> List.to_string(found)
      end

    opts = [cd: dir, env: env, stderr_to_stdout: true]

    if timeout,
      do: System.cmd(timeout, [to_string(@command_timeout), exe | args], opts),
      else: System.cmd(exe, args, opts)
  end

  @doc """
  A PATH with what mix needs (erl, elixir, mix, a shell, coreutils) and no
  cargo or rustc: the directories of those tools, minus any that hold Rust.
  """
  @spec path_without_rust() :: String.t()
  def path_without_rust do
    ~w(erl elixir mix sh env timeout cat)
    |> Enum.map(&System.find_executable/1)
    |> Enum.reject(&is_nil/1)
    |> Enum.map(&Path.dirname/1)
    |> Enum.concat(["/usr/bin", "/bin"])
    |> Enum.uniq()
    |> Enum.filter(&File.dir?/1)
    |> Enum.reject(fn dir ->
      Enum.any?(~w(cargo rustc), &File.exists?(Path.join(dir, &1)))
    end)
    |> Enum.join(":")
  end

  @doc """
  Writes fake `rustc` (reporting `rustc_version`) and `cargo` (touching
  `dir/cargo_ran` if called) into `dir/bin`; returns that directory.
  """
  @spec fake_rust!(Path.t(), String.t()) :: Path.t()
  def fake_rust!(dir, rustc_version) do
    bin = Path.join(dir, "bin")
    File.mkdir_p!(bin)
    marker = Path.join(dir, "cargo_ran")

    File.write!(Path.join(bin, "rustc"), """
    #!/bin/sh
    echo "rustc #{rustc_version} (0000000 2024-01-01)"
    """)

    File.write!(Path.join(bin, "cargo"), """
    #!/bin/sh
    touch #{inspect(marker)}
    echo "error: failed to parse lock file" >&2
    exit 101
    """)

    File.chmod!(Path.join(bin, "rustc"), 0o755)
    File.chmod!(Path.join(bin, "cargo"), 0o755)
    bin
  end
end
