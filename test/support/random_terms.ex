defmodule ElixirScope.Foundation.TestSupport.RandomTerms do
  @moduledoc """
  Random Erlang terms for robustness tests: every kind of term (numbers,
  existing atoms, valid and invalid UTF-8 binaries, bitstrings, charlists,
  improper lists, tuples, maps with odd keys, structs, pids, refs, ports,
  funs), plus very deep and very large terms.

  Uses the process's `:rand` state: seed it first with
  `:rand.seed(:exsss, {1, 2, 3})` so a run is reproducible.
  """

  @atoms [
    nil,
    true,
    false,
    :ok,
    :error,
    :a,
    :b,
    :"",
    :"with space",
    :élan,
    Foo,
    ElixirScope.Foundation.Error,
    :__struct__
  ]

  @doc "A random term of nesting depth at most `depth`."
  @spec term(non_neg_integer()) :: term()
  def term(depth \\ 3)
  def term(0), do: leaf()

  def term(depth) do
    case :rand.uniform(10) do
      n when n <= 4 -> leaf()
      5 -> list(depth)
      6 -> [term(depth - 1) | term(depth - 1)]
      7 -> list(depth) |> List.to_tuple()
      8 -> map(depth)
      9 -> struct_term()
      10 -> {:error, term(depth - 1)}
    end
  end

  @doc "A random scalar term."
  @spec leaf() :: term()
  def leaf do
    case :rand.uniform(14) do
      1 -> :rand.uniform(1000) - 500
      2 -> Integer.pow(2, 64 + :rand.uniform(200)) * Enum.random([1, -1])
      3 -> (:rand.uniform() - 0.5) * Enum.random([1, 1.0e-300, 1.0e300])
      4 -> Enum.random(@atoms)
      5 -> :rand.bytes(:rand.uniform(40))
      6 -> Enum.random(["", " ", "héllo wörld", "\r\n\t", "  a  b  ", "日本語", "🎉"])
      7 -> <<:rand.uniform(127)::7>>
      8 -> ~c"charlist"
      9 -> self()
      10 -> make_ref()
      11 -> Enum.random([fn -> :ok end, fn x -> x end, &Enum.map/2])
      12 -> port()
      13 -> {}
      14 -> Enum.random([[], %{}, 0, -0.0])
    end
  end

  @doc "A random map whose keys are random terms."
  @spec map(non_neg_integer()) :: map()
  def map(depth) do
    for _ <- 1..:rand.uniform(6), into: %{}, do: {key(), term(depth - 1)}
  end

  defp key do
    Enum.random([Enum.random(@atoms), "ok", "error", "surely_no_atom_h1_xq7", 1, {:k}, [1]])
  end

  defp list(depth), do: for(_ <- 1..:rand.uniform(5), do: term(depth - 1))

  defp struct_term do
    Enum.random([
      DateTime.utc_now(),
      ~D[2024-01-01],
      %ElixirScope.Foundation.Types.Event{event_type: :x, event_id: 1, timestamp: 0},
      %ArgumentError{message: "x"},
      1..3
    ])
  end

  defp port do
    case Port.list() do
      [port | _] -> port
      [] -> make_ref()
    end
  end

  @doc "A term nested `levels` deep, using the container kind `kind`."
  @spec deep(:list | :map | :tuple | :improper, pos_integer()) :: term()
  def deep(kind, levels \\ 10_000) do
    Enum.reduce(1..levels, :leaf, fn i, acc ->
      case kind do
        :list -> [acc]
        :map -> %{"k#{rem(i, 3)}" => acc, :a => i}
        :tuple -> {acc}
        :improper -> [i | acc]
      end
    end)
  end

  @doc "A few large terms (about 1 MB each)."
  @spec large() :: [term()]
  def large do
    [
      :binary.copy("x", 1_000_000),
      Enum.to_list(1..100_000),
      Map.new(1..20_000, &{&1, "v#{&1}"}),
      List.duplicate(%{a: "b"}, 50_000)
    ]
  end
end
