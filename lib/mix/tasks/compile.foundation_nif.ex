defmodule Mix.Tasks.Compile.FoundationNif do
  @moduledoc """
  Builds the Rust NIF library with cargo and installs it in `priv/native/`.

  Listed in `compilers:` of `mix.exs`. It runs
  `cargo build --release -p foundation_nif` only when a file under `native/`,
  `Cargo.toml` or `Cargo.lock` is newer than the installed library, then
  replaces `priv/native/foundation_nif.so` (deleting the old file first so a
  running VM never sees a half-written library).

  Environment:

    * `FOUNDATION_NIF_SKIP` - when set to `1`, the task does nothing (for
      environments that ship a prebuilt library).
    * `CARGO` - the cargo executable to run (default: `cargo` on the PATH).
  """
  use Mix.Task.Compiler

  @crate "foundation_nif"

  @impl Mix.Task.Compiler
  def run(_args) do
    root = project_root()
    target = library_path()

    cond do
      System.get_env("FOUNDATION_NIF_SKIP") == "1" -> {:noop, []}
      up_to_date?(root, target) -> {:noop, []}
      true -> build(root, target)
    end
  end

  @impl Mix.Task.Compiler
  def clean do
    _ = File.rm(library_path())
    :ok
  end

  @doc false
  def library_path do
    Path.join([Mix.Project.app_path(), "priv", "native", @crate <> ".so"])
  end

  defp project_root, do: Path.dirname(Mix.Project.project_file())

  defp up_to_date?(root, target) do
    case File.stat(target, time: :posix) do
      # Strictly older: mtimes have 1 s resolution, and a source saved in
      # the second of the last build may be newer than it (cargo decides).
      {:ok, %{mtime: built}} -> newest_source(root) < built
      {:error, _} -> false
    end
  end

  defp newest_source(root) do
    [Path.join(root, "Cargo.toml"), Path.join(root, "Cargo.lock")]
    |> Enum.concat(Path.wildcard(Path.join(root, "native/**/*.{rs,toml}")))
    |> Enum.map(fn path ->
      case File.stat(path, time: :posix) do
        {:ok, %{mtime: mtime}} -> mtime
        {:error, _} -> 0
      end
    end)
    |> Enum.max(fn -> 0 end)
  end

  defp build(root, target) do
    cargo = System.get_env("CARGO") || System.find_executable("cargo")

    if cargo do
      Mix.shell().info("Compiling NIF crate #{@crate} (cargo build --release)")
      args = ["build", "--release", "--quiet", "-p", @crate]

      case System.cmd(cargo, args, cd: root, stderr_to_stdout: true, into: IO.stream()) do
        {_, 0} -> install(root, target)
        {_, status} -> failure("cargo build failed with exit status #{status}")
      end
    else
      failure("cargo not found: install Rust (https://rustup.rs) to build #{@crate}")
    end
  end

  defp install(root, target) do
    source =
      ["lib#{@crate}.so", "lib#{@crate}.dylib", "#{@crate}.dll"]
      |> Enum.map(&Path.join([cargo_target_dir(root), "release", &1]))
      |> Enum.find(&File.exists?/1)

    if source do
      File.mkdir_p!(Path.dirname(target))
      _ = File.rm(target)
      File.cp!(source, target)
      unload_native()
      {:ok, []}
    else
      failure("cargo finished but no library for #{@crate} was found")
    end
  end

  # The Elixir compiler has already loaded `Native` in this VM (with the old
  # library, or with bare stubs on a first build), and `mix test` runs the
  # tests in this same VM: unload it so its next use loads the new library.
  defp unload_native do
    native = ElixirScope.Foundation.Native

    if :code.is_loaded(native) do
      _ = :code.purge(native)
      _ = :code.delete(native)
      _ = :code.purge(native)
    end

    :ok
  end

  defp cargo_target_dir(root) do
    System.get_env("CARGO_TARGET_DIR") || Path.join(root, "target")
  end

  defp failure(message) do
    Mix.shell().error(message)

    diagnostic = %Mix.Task.Compiler.Diagnostic{
      compiler_name: "foundation_nif",
      file: Path.join(project_root(), "Cargo.toml"),
      message: message,
      position: nil,
      severity: :error
    }

    {:error, [diagnostic]}
  end
end
