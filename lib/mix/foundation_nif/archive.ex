defmodule ElixirScope.Foundation.NifBuild.Archive do
  @moduledoc false
  # Prebuilt NIF archives and their checksum file.
  #
  # An archive is `libfoundation_nif-v<version>-nif-<nif>-<target>.so.tar.gz`,
  # a gzipped tar holding one member: the library, named like the archive
  # without `.tar.gz`. Next to the archives, `checksum-elixir_scope_foundation.exs`
  # holds an Elixir map literal of archive file name => "sha256:<hex>". The
  # file is parsed, never evaluated.

  @lib "libfoundation_nif"
  @checksum_file "checksum-elixir_scope_foundation.exs"

  @type error :: {:error, String.t()}

  @doc false
  @spec checksum_file() :: String.t()
  def checksum_file, do: @checksum_file

  @doc false
  @spec file_name(String.t(), String.t(), String.t()) :: String.t()
  def file_name(version, nif_version, target),
    do: "#{@lib}-v#{version}-nif-#{nif_version}-#{target}.so.tar.gz"

  @doc false
  @spec sha256(binary()) :: String.t()
  def sha256(content),
    do: "sha256:" <> Base.encode16(:crypto.hash(:sha256, content), case: :lower)

  @doc """
  Packs `library` (a built `.so`) into `out_dir` and records its checksum,
  keeping the entries of other archives already listed there.
  """
  @spec pack(Path.t(), Path.t(), String.t(), String.t(), String.t()) ::
          {:ok, Path.t()} | error()
  def pack(library, out_dir, version, nif_version, target) do
    name = file_name(version, nif_version, target)
    archive = Path.join(out_dir, name)
    member = String.to_charlist(String.replace_suffix(name, ".tar.gz", ""))

    with :ok <- File.mkdir_p(out_dir),
         {:ok, content} <- File.read(library),
         :ok <- :erl_tar.create(String.to_charlist(archive), [{member, content}], [:compressed]),
         {:ok, checksums} <- read_checksums(out_dir, _missing_ok = true),
         :ok <- write_checksums(out_dir, Map.put(checksums, name, sha256(File.read!(archive)))) do
      {:ok, archive}
    else
      {:error, message} when is_binary(message) -> {:error, message}
      {:error, reason} -> {:error, "could not write #{archive}: #{inspect(reason)}"}
    end
  end

  @doc """
  Finds the archive for `target` in `dir` with the highest NIF version not
  above `host_nif`, checks it against the checksum file and returns the
  library's bytes.
  """
  @spec unpack(Path.t(), String.t(), String.t(), String.t()) ::
          {:ok, %{file: String.t(), checksum: String.t(), library: binary()}} | error()
  def unpack(dir, version, target, host_nif) do
    with {:ok, names} <- list(dir),
         {:ok, name} <- select(names, version, target, host_nif, dir),
         {:ok, checksums} <- read_checksums(dir, false),
         {:ok, content} <- read_archive(dir, name),
         {:ok, checksum} <- verify(name, content, checksums, dir),
         {:ok, library} <- extract(name, content) do
      {:ok, %{file: name, checksum: checksum, library: library}}
    end
  end

  defp list(dir) do
    case File.ls(dir) do
      {:ok, names} -> {:ok, names}
      {:error, reason} -> {:error, "cannot read the prebuilt NIF directory #{dir}: #{reason}"}
    end
  end

  @doc false
  @spec select([String.t()], String.t(), String.t(), String.t(), Path.t()) ::
          {:ok, String.t()} | error()
  def select(names, version, target, host_nif, dir) do
    prefix = "#{@lib}-v#{version}-nif-"
    suffix = "-#{target}.so.tar.gz"
    host = parse_nif(host_nif)

    names
    |> Enum.filter(&(String.starts_with?(&1, prefix) and String.ends_with?(&1, suffix)))
    |> Enum.map(
      &{&1, &1 |> String.slice(byte_size(prefix)..-(byte_size(suffix) + 1)) |> parse_nif()}
    )
    |> Enum.filter(fn {_, nif} -> nif != nil and nif <= host end)
    |> Enum.max_by(fn {_, nif} -> nif end, fn -> nil end)
    |> case do
      {name, _} -> {:ok, name}
      nil -> {:error, no_archive(names, version, target, host_nif, dir)}
    end
  end

  defp no_archive(names, version, target, host_nif, dir) do
    found = Enum.filter(names, &String.ends_with?(&1, ".tar.gz"))

    """
    no prebuilt NIF archive for this machine in #{dir}: expected \
    #{file_name(version, "<nif>", target)} with a NIF version <= #{host_nif} \
    (found: #{if found == [], do: "none", else: Enum.join(found, ", ")}). \
    Run `mix elixir_scope_foundation.nif.package --out #{dir}` on a #{target} machine \
    with Rust, or build from source: install Rust >= 1.91 (https://rustup.rs) and \
    unset ELIXIR_SCOPE_FOUNDATION_PREBUILT (or set ELIXIR_SCOPE_FOUNDATION_BUILD=1).\
    """
  end

  defp parse_nif(text) do
    case Regex.run(~r/^(\d+)\.(\d+)$/, text) do
      [_, major, minor] -> {String.to_integer(major), String.to_integer(minor)}
      nil -> nil
    end
  end

  defp read_archive(dir, name) do
    case File.read(Path.join(dir, name)) do
      {:ok, content} -> {:ok, content}
      {:error, reason} -> {:error, "cannot read #{Path.join(dir, name)}: #{reason}"}
    end
  end

  defp verify(name, content, checksums, dir) do
    actual = sha256(content)

    case Map.fetch(checksums, name) do
      {:ok, ^actual} ->
        {:ok, actual}

      {:ok, expected} ->
        {:error,
         "checksum mismatch for prebuilt NIF archive #{Path.join(dir, name)}: " <>
           "#{@checksum_file} lists #{expected}, the file is #{actual}. The archive was " <>
           "altered or the checksum file is stale: package it again with " <>
           "`mix elixir_scope_foundation.nif.package`, or unset ELIXIR_SCOPE_FOUNDATION_PREBUILT " <>
           "to build from source with Rust."}

      :error ->
        {:error,
         "#{name} is not listed in #{Path.join(dir, @checksum_file)}: package it with " <>
           "`mix elixir_scope_foundation.nif.package`, which records its checksum."}
    end
  end

  defp extract(name, content) do
    member = String.replace_suffix(name, ".tar.gz", "")

    case :erl_tar.extract({:binary, content}, [:compressed, :memory]) do
      {:ok, files} ->
        case Enum.find(files, fn {path, _} -> Path.basename(to_string(path)) == member end) do
          {_, library} -> {:ok, library}
          nil -> {:error, "prebuilt NIF archive #{name} does not contain #{member}"}
        end

      {:error, reason} ->
        {:error, "cannot unpack prebuilt NIF archive #{name}: #{inspect(reason)}"}
    end
  end

  @doc false
  @spec read_checksums(Path.t(), boolean()) :: {:ok, %{String.t() => String.t()}} | error()
  def read_checksums(dir, missing_ok?) do
    path = Path.join(dir, @checksum_file)

    case File.read(path) do
      {:ok, text} -> parse_checksums(text, path)
      {:error, :enoent} when missing_ok? -> {:ok, %{}}
      {:error, reason} -> {:error, "cannot read the checksum file #{path}: #{reason}"}
    end
  end

  defp parse_checksums(text, path) do
    with {:ok, {:%{}, _, pairs}} <- Code.string_to_quoted(text),
         true <- Enum.all?(pairs, &match?({name, "sha256:" <> _} when is_binary(name), &1)) do
      {:ok, Map.new(pairs)}
    else
      _ -> {:error, "#{path} is not a map of archive name => \"sha256:<hex>\""}
    end
  end

  defp write_checksums(dir, checksums) do
    body =
      checksums
      |> Enum.sort()
      |> Enum.map_join(",\n", fn {name, sum} -> "  #{inspect(name)} => #{inspect(sum)}" end)

    File.write(Path.join(dir, @checksum_file), "%{\n" <> body <> "\n}\n")
  end
end
