defmodule Mix.Tasks.ElixirScopeFoundation.Nif.Package do
  @shortdoc "Builds the release NIF and packs it as a prebuilt archive"

  @moduledoc """
  Builds the NIF library for this machine and writes a prebuilt archive that
  a machine without Rust can install (`ELIXIR_SCOPE_FOUNDATION_PREBUILT`).

      mix elixir_scope_foundation.nif.package [--out DIR]

  Writes `DIR/libfoundation_nif-v<version>-nif-<nif_version>-<target>.so.tar.gz`
  and records its `"sha256:<hex>"` in `DIR/checksum-elixir_scope_foundation.exs`
  (entries for other targets already in that file are kept, so one directory
  can collect the archives of several machines).

    * `<version>` - this library's version.
    * `<nif_version>` - the NIF version of the VM running the task
      (`:erlang.system_info(:nif_version)`).
    * `<target>` - the Rust target triple of the host, from `rustc -vV`.

  Options:

    * `--out DIR` - where to write (default: `_build/prebuilt`).

  The library is built with `cargo build --release -p foundation_nif` and no
  extra features, whatever `MIX_ENV` is.
  """
  use Mix.Task

  alias ElixirScope.Foundation.NifBuild.{Archive, Cargo, Target}

  @switches [out: :string]

  @impl Mix.Task
  def run(args) do
    {opts, _rest} = OptionParser.parse!(args, strict: @switches)
    out = Path.expand(opts[:out] || Path.join("_build", "prebuilt"))
    root = Path.dirname(Mix.Project.project_file())
    version = Mix.Project.config()[:version]

    with {:ok, rustc} <- Cargo.check_toolchain(),
         {:ok, target} <- Target.host_from_rustc(rustc),
         {:ok, library} <- Cargo.build(root, []),
         {:ok, archive} <- Archive.pack(library, out, version, Target.nif_version(), target) do
      Mix.shell().info("Wrote #{archive}")
      Mix.shell().info("Wrote #{Path.join(out, Archive.checksum_file())}")
      {:ok, archive}
    else
      {:error, message} -> Mix.raise(message)
    end
  end
end
