defmodule ElixirScope.Foundation.NifBuild.Cargo do
  @moduledoc false
  # Builds the NIF crate from source: checks the toolchain first (so an old
  # Rust fails with the version it needs, not with a lock-file error from a
  # newer Cargo.lock format), then runs cargo with its progress on screen.

  @crate "foundation_nif"
  # rustler 0.39's minimum supported Rust version.
  @min_rustc {1, 91}

  @type error :: {:error, String.t()}

  @doc false
  @spec crate() :: String.t()
  def crate, do: @crate

  @doc false
  @spec min_rustc() :: String.t()
  def min_rustc, do: "#{elem(@min_rustc, 0)}.#{elem(@min_rustc, 1)}"

  @doc false
  @spec cargo() :: String.t() | nil
  def cargo, do: System.get_env("CARGO") || System.find_executable("cargo")

  @doc false
  @spec rustc() :: String.t() | nil
  def rustc, do: System.get_env("RUSTC") || System.find_executable("rustc")

  @doc "Checks that rustc exists and is recent enough; returns its path."
  @spec check_toolchain() :: {:ok, String.t()} | error()
  def check_toolchain do
    case rustc() do
      nil -> {:error, "rustc not found: #{install_hint()}"}
      rustc -> rustc |> rustc_version() |> check_version(rustc)
    end
  end

  defp rustc_version(rustc) do
    case System.cmd(rustc, ["--version"], stderr_to_stdout: true) do
      {output, 0} -> parse_version(output)
      {output, _} -> {:error, "`#{rustc} --version` failed: #{String.trim(output)}"}
    end
  rescue
    error in ErlangError -> {:error, "could not run #{rustc}: #{Exception.message(error)}"}
  end

  @doc false
  @spec parse_version(String.t()) ::
          {:ok, {non_neg_integer(), non_neg_integer()}, String.t()} | error()
  def parse_version(output) do
    case Regex.run(~r/rustc (\d+)\.(\d+)\.\d+\S*/, output) do
      [found, major, minor] -> {:ok, {String.to_integer(major), String.to_integer(minor)}, found}
      nil -> {:error, "cannot read the version in `rustc --version` output: #{inspect(output)}"}
    end
  end

  defp check_version({:ok, version, _found}, rustc) when version >= @min_rustc, do: {:ok, rustc}

  defp check_version({:ok, _version, found}, _rustc) do
    {:error,
     "the NIF crate #{@crate} needs rustc >= #{min_rustc()} (found #{found}): " <>
       "run `rustup update stable`, or set ELIXIR_SCOPE_FOUNDATION_PREBUILT to a " <>
       "directory of prebuilt archives to install without Rust"}
  end

  defp check_version({:error, _} = error, _rustc), do: error

  @doc false
  @spec install_hint() :: String.t()
  def install_hint do
    "install Rust >= #{min_rustc()} (https://rustup.rs) to build the NIF from source, " <>
      "or set ELIXIR_SCOPE_FOUNDATION_PREBUILT=DIR to a directory of prebuilt archives " <>
      "made with `mix elixir_scope_foundation.nif.package`"
  end

  @doc """
  Runs `cargo build --release -p foundation_nif` in `root` with `features`
  (a list of cargo feature names), streaming cargo's progress lines, and
  returns the path of the built library.
  """
  @spec build(Path.t(), [String.t()]) :: {:ok, Path.t()} | error()
  def build(root, features) do
    with {:ok, cargo} <- find_cargo(),
         {:ok, _rustc} <- check_toolchain() do
      feature_args = if features == [], do: [], else: ["--features", Enum.join(features, ",")]
      args = ["build", "--release", "-p", @crate | feature_args]
      Mix.shell().info("Compiling NIF crate #{@crate} (cargo #{Enum.join(args, " ")})")

      case System.cmd(cargo, args, cd: root, stderr_to_stdout: true, into: IO.stream()) do
        {_, 0} -> built_library(root)
        {_, status} -> {:error, "cargo build of #{@crate} failed with exit status #{status}"}
      end
    end
  end

  defp find_cargo do
    case cargo() do
      nil -> {:error, "cargo not found on the PATH: #{install_hint()}"}
      cargo -> {:ok, cargo}
    end
  end

  defp built_library(root) do
    dir = Path.join(System.get_env("CARGO_TARGET_DIR") || Path.join(root, "target"), "release")

    ["lib#{@crate}.so", "lib#{@crate}.dylib", "#{@crate}.dll"]
    |> Enum.map(&Path.join(dir, &1))
    |> Enum.find(&File.exists?/1)
    |> case do
      nil -> {:error, "cargo finished but no library for #{@crate} was found in #{dir}"}
      path -> {:ok, path}
    end
  end
end
