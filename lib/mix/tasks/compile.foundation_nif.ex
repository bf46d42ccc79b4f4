defmodule Mix.Tasks.Compile.FoundationNif do
  @moduledoc """
  Installs the Rust NIF library in `priv/native/foundation_nif.so`: from a
  prebuilt archive when one is configured, else built from source with cargo.

  Listed in `compilers:` of `mix.exs`, after the Elixir compiler. The library
  is replaced by deleting the old file first, so a running VM never sees a
  half-written one.

  ## Where the library comes from

    * `ELIXIR_SCOPE_FOUNDATION_PREBUILT=DIR` - install from a directory made by
      `mix elixir_scope_foundation.nif.package`: the archive for this machine's
      target with the highest NIF version not above the VM's, after checking
      its sha256 against `checksum-elixir_scope_foundation.exs`. No Rust
      needed. Give an absolute path (when the library is a dependency, mix
      compiles it from the dependency's own directory).
    * `ELIXIR_SCOPE_FOUNDATION_BUILD=1` - build with cargo even when
      `ELIXIR_SCOPE_FOUNDATION_PREBUILT` is set.
    * otherwise - `cargo build --release -p foundation_nif`, only when a file
      under `native/`, `Cargo.toml` or `Cargo.lock` is newer than the
      installed library. Needs rustc >= 1.91; cargo's progress is shown.

  ## Other environment variables

    * `ELIXIR_SCOPE_FOUNDATION_NIF_FEATURES` - extra cargo features, comma
      separated (e.g. `test-support` for a benchmark that reads the native
      heap counter outside MIX_ENV=test). `MIX_ENV=test` builds of this
      project turn `test-support` on by themselves.
    * `FOUNDATION_NIF_SKIP=1` - do nothing (the library is put in place by
      other means).
    * `CARGO`, `RUSTC`, `CARGO_TARGET_DIR` - as for cargo itself.
  """
  use Mix.Task.Compiler

  alias ElixirScope.Foundation.NifBuild.{Archive, Cargo, Target}

  @impl Mix.Task.Compiler
  def run(_args) do
    result =
      if System.get_env("FOUNDATION_NIF_SKIP") == "1" do
        {:noop, []}
      else
        case source() do
          {:prebuilt, dir} -> install_prebuilt(dir)
          :cargo -> build_from_source()
        end
      end

    unload_compiled_native()
    result
  end

  @impl Mix.Task.Compiler
  def manifests, do: [manifest_path()]

  @impl Mix.Task.Compiler
  def clean do
    _ = File.rm(library_path())
    _ = File.rm(manifest_path())
    :ok
  end

  @doc false
  def library_path do
    Path.join([Mix.Project.app_path(), "priv", "native", Cargo.crate() <> ".so"])
  end

  defp manifest_path, do: Path.join(Mix.Project.manifest_path(), "compile.foundation_nif")

  defp source do
    prebuilt = System.get_env("ELIXIR_SCOPE_FOUNDATION_PREBUILT")

    cond do
      System.get_env("ELIXIR_SCOPE_FOUNDATION_BUILD") in ["1", "true"] -> :cargo
      prebuilt in [nil, ""] -> :cargo
      true -> {:prebuilt, Path.expand(prebuilt)}
    end
  end

  # prebuilt archive

  defp install_prebuilt(dir) do
    version = Mix.Project.config()[:version]

    case Archive.unpack(dir, version, Target.current(), Target.nif_version()) do
      {:ok, %{file: file, checksum: checksum, library: library}} ->
        stamp = "prebuilt #{file} #{checksum}"

        if stamp == read_manifest() and File.regular?(library_path()) do
          {:noop, []}
        else
          Mix.shell().info("Installing prebuilt NIF #{file} from #{dir}")
          install(fn target -> File.write(target, library) end, stamp)
        end

      {:error, message} ->
        failure(message)
    end
  end

  # cargo build

  defp build_from_source do
    root = project_root()
    features = features()
    stamp = "cargo features=#{Enum.join(features, ",")}"

    if stamp == read_manifest() and up_to_date?(root, library_path()) do
      {:noop, []}
    else
      case Cargo.build(root, features) do
        {:ok, built} -> install(fn target -> File.cp(built, target) end, stamp)
        {:error, message} -> failure(message)
      end
    end
  end

  defp features do
    extra =
      (System.get_env("ELIXIR_SCOPE_FOUNDATION_NIF_FEATURES") || "")
      |> String.split(",", trim: true)
      |> Enum.map(&String.trim/1)

    if(Mix.env() == :test, do: ["test-support" | extra], else: extra)
    |> Enum.uniq()
    |> Enum.sort()
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

  # installing

  defp install(write, stamp) do
    target = library_path()
    File.mkdir_p!(Path.dirname(target))
    _ = File.rm(target)

    case write.(target) do
      :ok ->
        File.mkdir_p!(Path.dirname(manifest_path()))
        File.write!(manifest_path(), stamp)
        unload_native()
        {:ok, []}

      {:error, reason} ->
        failure("cannot write #{target}: #{:file.format_error(reason)}")
    end
  end

  defp read_manifest do
    case File.read(manifest_path()) do
      {:ok, stamp} -> stamp
      {:error, _} -> nil
    end
  end

  # A new library was installed: `Native` may be loaded in this VM with the
  # old one (a running application, as after `recompile` in IEx): unload it
  # so its next use loads the new library.
  defp unload_native do
    native = ElixirScope.Foundation.Native

    if :code.is_loaded(native) do
      _ = :code.purge(native)
      _ = :code.delete(native)
      _ = :code.purge(native)
    end

    :ok
  end

  # The copy of `Native` the Elixir compiler loaded has stubs only (see
  # `Native.load_nif/0`): unload it whether or not a library was installed,
  # so its first use loads the module from its .beam file, with the
  # library. A copy that has its library (a running application, as after
  # `recompile` in IEx) keeps it.
  defp unload_compiled_native do
    native = ElixirScope.Foundation.Native
    if :code.is_loaded(native) && not library_loaded?(native), do: unload_native()
    :ok
  end

  defp library_loaded?(native) do
    _ = native.native_version()
    true
  rescue
    ErlangError -> false
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
