defmodule ElixirScope.Foundation.NifBuildTest do
  # The pieces of the prebuilt-archive mechanism that need no cargo: target
  # names, archive selection, pack/unpack and checksum checks, rustc versions.
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.NifBuild.{Archive, Cargo, Target}

  setup do
    dir = Path.join(System.tmp_dir!(), "es_nif_build_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)
    {:ok, dir: dir}
  end

  describe "Target" do
    test "maps the VM's system architecture to Rust target triples" do
      assert Target.from_system_architecture("x86_64-pc-linux-gnu") == "x86_64-unknown-linux-gnu"

      assert Target.from_system_architecture("x86_64-redhat-linux-gnu") ==
               "x86_64-unknown-linux-gnu"

      assert Target.from_system_architecture("aarch64-unknown-linux-musl") ==
               "aarch64-unknown-linux-musl"

      assert Target.from_system_architecture("x86_64-pc-linux-musl") ==
               "x86_64-unknown-linux-musl"

      assert Target.from_system_architecture("arm-unknown-linux-gnueabihf") ==
               "arm-unknown-linux-gnueabihf"

      assert Target.from_system_architecture("aarch64-apple-darwin23.1.0") ==
               "aarch64-apple-darwin"

      assert Target.from_system_architecture("x86_64-apple-darwin21.6.0") == "x86_64-apple-darwin"

      assert Target.from_system_architecture("amd64-portbld-freebsd14.0") ==
               "x86_64-unknown-freebsd"

      assert Target.from_system_architecture("x86_64-pc-linux") == "x86_64-unknown-linux-gnu"
    end

    test "the current target agrees with rustc's host triple on this machine" do
      rustc = Cargo.rustc()

      if rustc do
        assert {:ok, triple} = Target.host_from_rustc(rustc)
        assert Target.current() == triple
      end
    end

    test "reads the host line of rustc -vV" do
      output =
        "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\n"

      assert Target.parse_rustc_host(output) == {:ok, "x86_64-unknown-linux-gnu"}
      assert {:error, message} = Target.parse_rustc_host("rustc 1.95.0")
      assert message =~ "no `host:` line"
    end

    test "the NIF version is the VM's" do
      assert Target.nif_version() == List.to_string(:erlang.system_info(:nif_version))
    end
  end

  describe "Cargo.parse_version/1" do
    test "reads major and minor" do
      assert {:ok, {1, 95}, "rustc 1.95.0"} =
               Cargo.parse_version("rustc 1.95.0 (59807616e 2026-04-14)")

      assert {:ok, {1, 80}, "rustc 1.80.1-nightly"} =
               Cargo.parse_version("rustc 1.80.1-nightly (x)")

      assert {:error, message} = Cargo.parse_version("command not found")
      assert message =~ "cannot read the version"
    end

    test "the minimum is rustler's" do
      assert Cargo.min_rustc() == "1.91"
    end
  end

  describe "Archive.select/5" do
    @names [
      "libfoundation_nif-v0.1.0-nif-2.15-x86_64-unknown-linux-gnu.so.tar.gz",
      "libfoundation_nif-v0.1.0-nif-2.16-x86_64-unknown-linux-gnu.so.tar.gz",
      "libfoundation_nif-v0.1.0-nif-2.17-x86_64-unknown-linux-gnu.so.tar.gz",
      "libfoundation_nif-v0.1.0-nif-2.16-aarch64-apple-darwin.so.tar.gz",
      "libfoundation_nif-v0.0.9-nif-2.16-x86_64-unknown-linux-gnu.so.tar.gz",
      "checksum-elixir_scope_foundation.exs"
    ]

    test "picks the highest NIF version not above the VM's, for this version and target" do
      assert Archive.select(@names, "0.1.0", "x86_64-unknown-linux-gnu", "2.16", "d") ==
               {:ok, "libfoundation_nif-v0.1.0-nif-2.16-x86_64-unknown-linux-gnu.so.tar.gz"}

      assert Archive.select(@names, "0.1.0", "x86_64-unknown-linux-gnu", "2.15", "d") ==
               {:ok, "libfoundation_nif-v0.1.0-nif-2.15-x86_64-unknown-linux-gnu.so.tar.gz"}

      # versions compare as numbers: 2.17 is above 2.16
      assert Archive.select(@names, "0.1.0", "x86_64-unknown-linux-gnu", "2.99", "d") ==
               {:ok, "libfoundation_nif-v0.1.0-nif-2.17-x86_64-unknown-linux-gnu.so.tar.gz"}
    end

    test "no archive for the target, version or NIF version is an error naming what to do" do
      assert {:error, message} =
               Archive.select(@names, "0.1.0", "riscv64gc-unknown-linux-gnu", "2.16", "/d")

      assert message =~ "no prebuilt NIF archive for this machine in /d"
      assert message =~ "libfoundation_nif-v0.1.0-nif-<nif>-riscv64gc-unknown-linux-gnu.so.tar.gz"
      assert message =~ "mix elixir_scope_foundation.nif.package"
      assert message =~ "ELIXIR_SCOPE_FOUNDATION_BUILD=1"

      assert {:error, _} =
               Archive.select(@names, "0.2.0", "x86_64-unknown-linux-gnu", "2.16", "d")

      assert {:error, _} =
               Archive.select(@names, "0.1.0", "x86_64-unknown-linux-gnu", "2.14", "d")
    end
  end

  describe "Archive.pack/5 and unpack/4" do
    test "round trip, with the checksum file keeping other entries", %{dir: dir} do
      lib = Path.join(dir, "lib.so")
      File.write!(lib, "pretend library bytes")
      out = Path.join(dir, "out")

      assert {:ok, a} = Archive.pack(lib, out, "0.1.0", "2.16", "x86_64-unknown-linux-gnu")
      assert {:ok, b} = Archive.pack(lib, out, "0.1.0", "2.16", "aarch64-apple-darwin")

      {checksums, []} = Code.eval_file(Path.join(out, Archive.checksum_file()))
      assert Map.keys(checksums) |> Enum.sort() == Enum.sort([Path.basename(a), Path.basename(b)])
      assert checksums[Path.basename(a)] == Archive.sha256(File.read!(a))

      assert {:ok, %{file: file, library: "pretend library bytes", checksum: "sha256:" <> _}} =
               Archive.unpack(out, "0.1.0", "x86_64-unknown-linux-gnu", "2.16")

      assert file == Path.basename(a)
    end

    test "a changed archive or a missing checksum entry is refused", %{dir: dir} do
      lib = Path.join(dir, "lib.so")
      File.write!(lib, "bytes")
      out = Path.join(dir, "out")
      {:ok, archive} = Archive.pack(lib, out, "0.1.0", "2.16", "x86_64-unknown-linux-gnu")

      File.write!(archive, "!", [:append])
      assert {:error, message} = Archive.unpack(out, "0.1.0", "x86_64-unknown-linux-gnu", "2.16")
      assert message =~ "checksum mismatch for prebuilt NIF archive #{archive}"

      File.write!(Path.join(out, Archive.checksum_file()), "%{}\n")
      assert {:error, message} = Archive.unpack(out, "0.1.0", "x86_64-unknown-linux-gnu", "2.16")
      assert message =~ "is not listed in"

      File.write!(Path.join(out, Archive.checksum_file()), "File.rm_rf!(\"/\")")
      assert {:error, message} = Archive.unpack(out, "0.1.0", "x86_64-unknown-linux-gnu", "2.16")
      assert message =~ "is not a map of archive name"
    end

    test "a missing directory is named", %{dir: dir} do
      missing = Path.join(dir, "nope")

      assert {:error, message} =
               Archive.unpack(missing, "0.1.0", "x86_64-unknown-linux-gnu", "2.16")

      assert message =~ "cannot read the prebuilt NIF directory #{missing}"
    end
  end
end
