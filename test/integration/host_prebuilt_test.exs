defmodule ElixirScope.Foundation.HostPrebuiltTest do
  # A host project installs the NIF from a prebuilt archive on a PATH with no
  # cargo or rustc, runs it, and puts it in a release; broken setups fail the
  # compile with a message that says what to do. The archive is packaged once
  # by the package task; every step below runs mix in the same host project
  # (failing steps stop before they change its build). Part of the default run.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO

  alias ElixirScope.Foundation.NifBuild.Archive
  alias ElixirScope.Foundation.Test.HostProject

  @moduletag :host_project
  @moduletag timeout: 900_000

  setup_all do
    root = Path.join(System.tmp_dir!(), "es_prebuilt_#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm_rf!(root) end)

    pkg = Path.join(root, "pkg")

    capture_io(fn ->
      Mix.Tasks.ElixirScopeFoundation.Nif.Package.run(["--out", pkg])
    end)

    host = Path.join(root, "host")
    HostProject.write!(host)
    path = HostProject.path_without_rust()
    env = [{"PATH", path}, {"ELIXIR_SCOPE_FOUNDATION_PREBUILT", pkg}]

    {output, status} = HostProject.mix(host, ["compile"], env)
    if status != 0, do: raise("host compile without Rust failed:\n#{output}")

    %{root: root, pkg: pkg, host: host, path: path, env: env, compile_output: output}
  end

  test "the package task writes the archive and its checksum file", %{pkg: pkg} do
    [archive] = Path.wildcard(Path.join(pkg, "*.tar.gz"))
    name = Path.basename(archive)
    nif = List.to_string(:erlang.system_info(:nif_version))

    assert name =~
             ~r/^libfoundation_nif-v0\.1\.0-nif-#{Regex.escape(nif)}-[a-z0-9_]+-\w+-[a-z0-9_-]+\.so\.tar\.gz$/

    {checksums, []} = Code.eval_file(Path.join(pkg, "checksum-elixir_scope_foundation.exs"))
    assert checksums == %{name => Archive.sha256(File.read!(archive))}
  end

  test "compiled with no cargo on the PATH, the host stores and reads an event through the NIF",
       %{host: host, env: env, path: path, compile_output: compile_output} do
    for tool <- ~w(cargo rustc),
        dir <- String.split(path, ":"),
        do: refute(File.exists?(Path.join(dir, tool)), "#{tool} in #{dir}")

    assert compile_output =~ "Installing prebuilt NIF libfoundation_nif-v0.1.0-nif-"
    nif = Path.join(host, "_build/dev/lib/elixir_scope_foundation/priv/native/foundation_nif.so")
    # the packaged release build has no test-only NIF (nor its allocator)
    refute File.read!(nif) =~ "native_heap_bytes"
    refute compile_output =~ "cargo build"

    script = """
    alias ElixirScope.Foundation.Events
    {:ok, event} = Events.new_event(:host_check, %{n: 41})
    {:ok, id} = Events.store(event)
    {:ok, back} = Events.get(id)
    IO.puts("stored=" <> to_string(back.data.n))
    IO.puts("native=" <> ElixirScope.Foundation.Native.native_version())
    """

    {output, status} = HostProject.mix(host, ["run", "-e", script], env)
    assert status == 0, "mix run failed:\n#{output}"
    lines = String.split(output, "\n", trim: true)
    assert "stored=41" in lines, output
    assert "native=0.1.0" in lines, output
    refute output =~ "You have configured application", output
  end

  test "a mix release of the host contains the NIF and loads it", %{host: host, env: env} do
    {output, status} = HostProject.mix(host, ["release", "--overwrite"], env)
    assert status == 0, "mix release failed:\n#{output}"

    rel = Path.join(host, "_build/dev/rel/host_app")

    assert [nif] =
             Path.wildcard(
               Path.join(rel, "lib/elixir_scope_foundation-*/priv/native/foundation_nif.so")
             )

    assert File.regular?(nif)

    script = """
    {:ok, _} = Application.ensure_all_started(:elixir_scope_foundation)
    {:ok, event} = ElixirScope.Foundation.Events.new_event(:release_check, %{n: 7})
    {:ok, id} = ElixirScope.Foundation.Events.store(event)
    {:ok, back} = ElixirScope.Foundation.Events.get(id)
    IO.puts("release_stored=" <> to_string(back.data.n))
    IO.puts("release_nif=" <> to_string(:code.which(ElixirScope.Foundation.Native)))
    """

    {output, status} =
      HostProject.run(host, [Path.join(rel, "bin/host_app"), "eval", script], env)

    assert status == 0, "release eval failed:\n#{output}"
    assert output =~ "release_stored=7", output
    assert output =~ Path.join(rel, "lib"), output
  end

  test "a tampered archive fails the compile with the checksum message",
       %{root: root, pkg: pkg, host: host, env: env} do
    bad = Path.join(root, "tampered")
    File.cp_r!(pkg, bad)
    [archive] = Path.wildcard(Path.join(bad, "*.tar.gz"))
    File.write!(archive, "x", [:append])

    env =
      List.keystore(
        env,
        "ELIXIR_SCOPE_FOUNDATION_PREBUILT",
        0,
        {"ELIXIR_SCOPE_FOUNDATION_PREBUILT", bad}
      )

    {output, status} = HostProject.mix(host, ["compile"], env)
    assert status != 0, output
    assert output =~ "checksum mismatch for prebuilt NIF archive #{archive}", output
    assert output =~ "mix elixir_scope_foundation.nif.package", output
  end

  test "no archive for this target fails the compile naming what to install",
       %{root: root, pkg: pkg, host: host, env: env} do
    other = Path.join(root, "other_target")
    File.mkdir_p!(other)
    [archive] = Path.wildcard(Path.join(pkg, "*.tar.gz"))

    foreign =
      String.replace(
        Path.basename(archive),
        ~r/-nif-([0-9.]+)-.*\.so\.tar\.gz$/,
        "-nif-\\1-riscv64gc-unknown-none-elf.so.tar.gz"
      )

    File.cp!(archive, Path.join(other, foreign))

    env =
      List.keystore(
        env,
        "ELIXIR_SCOPE_FOUNDATION_PREBUILT",
        0,
        {"ELIXIR_SCOPE_FOUNDATION_PREBUILT", other}
      )

    {output, status} = HostProject.mix(host, ["compile"], env)
    assert status != 0, output
    assert output =~ "no prebuilt NIF archive for this machine in #{other}", output
    assert output =~ "found: #{foreign}", output
    assert output =~ "install Rust >= 1.91", output
  end

  test "no cargo and no archive fails the compile saying what to install or set",
       %{host: host, path: path} do
    {output, status} = HostProject.mix(host, ["compile"], [{"PATH", path}])
    assert status != 0, output
    assert output =~ "cargo not found on the PATH", output
    assert output =~ "install Rust >= 1.91 (https://rustup.rs)", output
    assert output =~ "ELIXIR_SCOPE_FOUNDATION_PREBUILT=DIR", output
  end

  test "a too-old rustc fails before cargo runs, with the version it needs",
       %{root: root, host: host, env: env, path: path} do
    fake = Path.join(root, "old_rust")
    bin = HostProject.fake_rust!(fake, "1.80.0")

    env =
      env
      |> List.keystore("PATH", 0, {"PATH", bin <> ":" <> path})
      |> List.keystore("ELIXIR_SCOPE_FOUNDATION_BUILD", 0, {"ELIXIR_SCOPE_FOUNDATION_BUILD", "1"})

    {output, status} = HostProject.mix(host, ["compile"], env)
    assert status != 0, output
    assert output =~ "needs rustc >= 1.91 (found rustc 1.80.0)", output
    refute File.exists?(Path.join(fake, "cargo_ran")), "cargo ran despite the old rustc"
    refute output =~ "lock file", output
  end

  test "an invalid legacy config stops the host's boot naming the key and value",
       %{host: host, env: env} do
    env = [{"HOST_BAD_CONFIG", "1"} | env]
    {output, status} = HostProject.mix(host, ["run", "-e", "IO.puts(:started)"], env)
    assert status != 0, output
    assert output =~ "invalid :elixir_scope config at [:ai, :planning, :sampling_rate]: 7", output
    refute output =~ ~r/^started$/m, output
  end
end
