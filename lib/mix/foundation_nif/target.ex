defmodule ElixirScope.Foundation.NifBuild.Target do
  @moduledoc false
  # Names the machine a NIF library is built for: a Rust target triple
  # (`x86_64-unknown-linux-gnu`) and the VM's NIF version (`"2.16"`).
  #
  # When packaging, the triple comes from `rustc -vV` (the compiler's own
  # `host:` line). When installing there may be no rustc at all, so the triple
  # is derived from `:erlang.system_info(:system_architecture)`, which uses
  # GNU config names (`x86_64-pc-linux-gnu`, `aarch64-apple-darwin23.1.0`).

  @doc false
  @spec nif_version() :: String.t()
  def nif_version, do: List.to_string(:erlang.system_info(:nif_version))

  @doc false
  @spec host_from_rustc(String.t()) :: {:ok, String.t()} | {:error, String.t()}
  def host_from_rustc(rustc) do
    case System.cmd(rustc, ["-vV"], stderr_to_stdout: true) do
      {output, 0} -> parse_rustc_host(output)
      {output, status} -> {:error, "`#{rustc} -vV` failed (exit #{status}): #{output}"}
    end
  rescue
    error in ErlangError -> {:error, "could not run `#{rustc} -vV`: #{Exception.message(error)}"}
  end

  @doc false
  @spec parse_rustc_host(String.t()) :: {:ok, String.t()} | {:error, String.t()}
  def parse_rustc_host(output) do
    case Regex.run(~r/^host:\s*(\S+)\s*$/m, output) do
      [_, triple] -> {:ok, triple}
      nil -> {:error, "no `host:` line in the output of `rustc -vV`: #{inspect(output)}"}
    end
  end

  @doc false
  @spec current() :: String.t()
  def current do
    arch = List.to_string(:erlang.system_info(:system_architecture))

    case :os.type() do
      {:win32, _} -> windows(:erlang.system_info(:wordsize))
      {:unix, _} -> from_system_architecture(arch)
    end
  end

  @doc false
  @spec from_system_architecture(String.t()) :: String.t()
  def from_system_architecture(arch) do
    case String.split(arch, "-", parts: 4) do
      [cpu, vendor, os, abi] -> normalize(cpu(cpu), vendor, os, abi)
      [cpu, vendor, os] -> normalize(cpu(cpu), vendor, os, nil)
      _ -> arch
    end
  end

  defp normalize(cpu, _vendor, "linux", abi), do: linux(cpu, abi || "gnu")

  defp normalize(cpu, _vendor, "darwin" <> _, _), do: "#{cpu}-apple-darwin"
  defp normalize(cpu, "apple", _os, _), do: "#{cpu}-apple-darwin"

  defp normalize(cpu, _vendor, "freebsd" <> _, _), do: "#{cpu}-unknown-freebsd"
  defp normalize(cpu, _vendor, "netbsd" <> _, _), do: "#{cpu}-unknown-netbsd"
  defp normalize(cpu, _vendor, "openbsd" <> _, _), do: "#{cpu}-unknown-openbsd"
  defp normalize(cpu, vendor, os, nil), do: Enum.join([cpu, vendor, os], "-")
  defp normalize(cpu, vendor, os, abi), do: Enum.join([cpu, vendor, os, abi], "-")

  # GNU's vendor field (`pc`, `redhat`, ...) is `unknown` in Rust's triples;
  # the ABI (`gnu`, `musl`, `gnueabihf`) is the same word in both.
  defp linux(cpu, abi), do: "#{cpu}-unknown-linux-#{abi}"

  defp cpu("amd64"), do: "x86_64"
  defp cpu("arm64"), do: "aarch64"
  defp cpu(cpu), do: cpu

  defp windows(8), do: "x86_64-pc-windows-msvc"
  defp windows(_), do: "i686-pc-windows-msvc"
end
