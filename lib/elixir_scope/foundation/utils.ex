defmodule ElixirScope.Foundation.Utils do
  @moduledoc """
  Pure helper functions used across the foundation: identifiers, timestamps,
  term sizes and previews, nested map access, key conversion, retries,
  formatting and process/system measurements.

  Everything here is plain Elixir over BIFs (`:atomics`,
  `:crypto.strong_rand_bytes/1`, ...): each call is cheaper than a NIF
  round trip would be. The one exception is the size of a big term
  (`deep_size/1`, `truncate_if_large/2`): it equals
  `:erlang.external_size/1`, but above a few thousand terms it is computed
  on a dirty CPU scheduler, as the BIF does not yield.

  Time units follow the original: `monotonic_timestamp/0` is milliseconds,
  `wall_timestamp/0` nanoseconds, `measure/1` microseconds.
  """

  import Bitwise

  alias ElixirScope.Foundation.TermSize

  # generate_id/0: 2024-01-01T00:00:00Z, and the widths of its fields.
  @id_epoch_ms 1_704_067_200_000
  @id_seq_bits 10
  @id_node_bits 12
  @id_key {__MODULE__, :id_generator}

  @typedoc "A nested-map path: a list of keys."
  @type path :: [term()]

  @typedoc "Options of `retry/2`."
  @type retry_opts :: [
          max_attempts: non_neg_integer(),
          base_delay: number(),
          max_delay: number()
        ]

  @typedoc "The marker `truncate_if_large/2` returns in place of a large term."
  @type truncated :: %{
          truncated: true,
          original_size: non_neg_integer(),
          preview: term(),
          timestamp: DateTime.t()
        }

  ## Identifiers and time

  @doc """
  A unique positive integer id, below 2^63, built like a Snowflake id
  (high bits to low bits):

    * 41 bits: milliseconds since 2024-01-01 00:00:00 UTC (system time;
      room until the year 2093),
    * 10 bits: a sequence within the millisecond,
    * 12 bits: the generator's node bits, a hash of the node name and
      random bytes drawn once per VM start.

  The millisecond and the sequence form one 51-bit counter per VM (an
  `:atomics` cell created on first use): each call takes the next value,
  or the current millisecond when the clock has moved past it. Ids of one
  VM are therefore distinct and increasing; beyond 1024 ids per
  millisecond the counter runs ahead of the clock and catches up when the
  rate drops. A restarted VM starts from the clock, above every id of its
  previous run, and draws new node bits; two nodes collide only if they
  draw the same node bits and count the same value in the same
  millisecond. The cost is one atomic add (two at a millisecond change)
  in the caller's process, no message.

      iex> id = ElixirScope.Foundation.Utils.generate_id()
      iex> is_integer(id) and id > 0 and id < 2 ** 63
      true
  """
  @spec generate_id() :: pos_integer()
  def generate_id do
    {counter, node_bits} = id_generator()
    now = (System.system_time(:millisecond) - @id_epoch_ms) <<< @id_seq_bits
    next_id_state(counter, now) <<< @id_node_bits ||| node_bits
  end

  # The counter only grows: `add_get` hands out distinct values, and the
  # one caller whose compare-exchange moves it forward to `now` owns `now`.
  defp next_id_state(counter, now) do
    case :atomics.add_get(counter, 1, 1) do
      state when state >= now ->
        state

      state ->
        case :atomics.compare_exchange(counter, 1, state, now) do
          :ok -> now
          _changed -> next_id_state(counter, now)
        end
    end
  end

  defp id_generator do
    case :persistent_term.get(@id_key, nil) do
      nil -> :global.trans({@id_key, self()}, &create_id_generator/0, [node()])
      generator -> generator
    end
  end

  # Runs under a lock on this node only, so two first callers never make
  # two counters.
  defp create_id_generator do
    case :persistent_term.get(@id_key, nil) do
      nil ->
        node_bits = :erlang.phash2({node(), :crypto.strong_rand_bytes(16)}, 1 <<< @id_node_bits)
        generator = {:atomics.new(1, signed: true), node_bits}
        :persistent_term.put(@id_key, generator)
        generator

      generator ->
        generator
    end
  end

  @doc """
  A random (version 4) UUID as a 36-character lowercase hex string.

      iex> id = ElixirScope.Foundation.Utils.generate_correlation_id()
      iex> id =~ ~r/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
      true
  """
  @spec generate_correlation_id() :: String.t()
  def generate_correlation_id do
    <<a::48, _::4, b::12, _::2, c::62>> = :crypto.strong_rand_bytes(16)
    # version nibble 4, variant bits 10
    hex = Base.encode16(<<a::48, 4::4, b::12, 2::2, c::62>>, case: :lower)
    <<p1::binary-8, p2::binary-4, p3::binary-4, p4::binary-4, p5::binary-12>> = hex
    <<p1::binary, ?-, p2::binary, ?-, p3::binary, ?-, p4::binary, ?-, p5::binary>>
  end

  @doc "Monotonic time in **milliseconds** (`System.monotonic_time(:millisecond)`; negative on the BEAM)."
  @spec monotonic_timestamp() :: integer()
  def monotonic_timestamp, do: System.monotonic_time(:millisecond)

  @doc "Wall-clock time in **nanoseconds** since the Unix epoch (`System.system_time(:nanosecond)`)."
  @spec wall_timestamp() :: integer()
  def wall_timestamp, do: System.system_time(:nanosecond)

  ## Term size

  @doc """
  Returns `data` unchanged when its external term size is at most `max_size`
  bytes (default 10 000), otherwise a marker map
  `%{truncated: true, original_size: size, preview: preview, timestamp: DateTime}`.

  The preview of a binary is its first 100 graphemes followed by `"..."`; of
  a list, its first 10 elements as `safe_inspect/1` strings; of a map, its
  first 5 entries (values kept as they are); of anything else, its
  `safe_inspect/1` string. If building the preview raises (an improper list,
  a struct), `data` is returned unchanged.

      iex> ElixirScope.Foundation.Utils.truncate_if_large(%{small: true})
      %{small: true}
      iex> t = ElixirScope.Foundation.Utils.truncate_if_large(String.duplicate("a", 200), 100)
      iex> {t.truncated, t.original_size, String.length(t.preview)}
      {true, 206, 103}
  """
  @spec truncate_if_large(term(), non_neg_integer()) :: term() | truncated()
  def truncate_if_large(data, max_size \\ 10_000) do
    size = TermSize.external_size(data)

    if size > max_size do
      %{
        truncated: true,
        original_size: size,
        preview: preview(data),
        timestamp: DateTime.utc_now()
      }
    else
      data
    end
  rescue
    _ -> data
  end

  defp preview(data) when is_binary(data), do: String.slice(data, 0, 100) <> "..."
  defp preview(data) when is_list(data), do: data |> Enum.take(10) |> Enum.map(&safe_inspect/1)
  defp preview(data) when is_map(data), do: data |> Enum.take(5) |> Map.new()
  defp preview(data), do: safe_inspect(data)

  @doc """
  The external term format size of `term` in bytes (exactly
  `:erlang.external_size/1`; for a term of more than a few thousand terms
  computed on a dirty CPU scheduler), 0 if it cannot be computed.

      iex> ElixirScope.Foundation.Utils.deep_size(<<1, 2, 3>>)
      9
  """
  @spec deep_size(term()) :: non_neg_integer()
  def deep_size(term) do
    TermSize.external_size(term)
  rescue
    _ -> 0
  end

  @doc """
  `inspect(term, limit: 100, printable_limit: 100)`, or `"<uninspectable>"`
  if inspecting raises.

      iex> ElixirScope.Foundation.Utils.safe_inspect({:ok, [1, 2]})
      "{:ok, [1, 2]}"
  """
  @spec safe_inspect(term()) :: String.t()
  def safe_inspect(term) do
    inspect(term, limit: 100, printable_limit: 100)
  rescue
    _ -> "<uninspectable>"
  end

  ## Nested maps

  @doc """
  Merges `right` into `left`: two maps merge recursively, anything else
  takes `right`.

      iex> ElixirScope.Foundation.Utils.deep_merge(%{a: %{b: 1, c: 2}}, %{a: %{c: 3}, d: 4})
      %{a: %{b: 1, c: 3}, d: 4}
      iex> ElixirScope.Foundation.Utils.deep_merge(%{a: 1}, [b: 2])
      [b: 2]
  """
  @spec deep_merge(term(), term()) :: term()
  def deep_merge(left, right) when is_map(left) and is_map(right) do
    Map.merge(left, right, fn _key, l, r -> deep_merge(l, r) end)
  end

  def deep_merge(_left, right), do: right

  @doc """
  Follows `path` through nested maps. `[]` returns `map` itself; a missing
  key, a `nil` value, a non-map on the way or a non-list path give `default`.
  `false` is a value, not a miss.

      iex> ElixirScope.Foundation.Utils.get_nested(%{a: %{b: 1}}, [:a, :b])
      1
      iex> ElixirScope.Foundation.Utils.get_nested(%{a: %{b: nil}}, [:a, :b], :default)
      :default
      iex> ElixirScope.Foundation.Utils.get_nested(%{a: false}, [:a], :default)
      false
      iex> ElixirScope.Foundation.Utils.get_nested(%{a: 1}, [:a, :b], :default)
      :default
  """
  @spec get_nested(term(), path(), term()) :: term()
  def get_nested(map, path, default \\ nil)
  def get_nested(map, [], _default), do: map

  def get_nested(map, [key | rest], default) when is_map(map) do
    case Map.get(map, key) do
      nil -> default
      value -> get_nested(value, rest, default)
    end
  end

  def get_nested(_map, _path, default), do: default

  @doc """
  Puts `value` at `path`, creating missing intermediate maps. `[]` returns
  `value`. Raises `FunctionClauseError` when an existing intermediate value
  (including `nil`) is not a map, or `path` is not a list.

      iex> ElixirScope.Foundation.Utils.put_nested(%{}, [:a, :b, :c], 1)
      %{a: %{b: %{c: 1}}}
      iex> ElixirScope.Foundation.Utils.put_nested(%{a: %{x: 0}}, [:a, :y], 1)
      %{a: %{x: 0, y: 1}}
  """
  @spec put_nested(map(), path(), term()) :: term()
  def put_nested(_map, [], value), do: value
  def put_nested(map, [key], value) when is_map(map), do: Map.put(map, key, value)

  def put_nested(map, [key | rest], value) when is_map(map) do
    Map.put(map, key, put_nested(Map.get(map, key, %{}), rest, value))
  end

  ## Strings and keys

  @doc """
  Replaces `\\r`, `\\n` and `\\t` with spaces, collapses whitespace runs into
  one space and trims. Raises `FunctionClauseError` for non-binaries.

      iex> ElixirScope.Foundation.Utils.sanitize_string("  a\\r\\n b\\t\\tc  ")
      "a b c"
  """
  @spec sanitize_string(String.t()) :: String.t()
  def sanitize_string(string) when is_binary(string) do
    string
    |> String.replace(~r/[\r\n\t]/, " ")
    |> String.replace(~r/\s+/, " ")
    |> String.trim()
  end

  @doc """
  Recursively (through maps and lists) turns string keys into atoms, **only
  when the atom already exists**; other string keys stay strings. Never
  creates atoms. Structs and other terms are returned unchanged.

      iex> ElixirScope.Foundation.Utils.atomize_keys(%{"ok" => [%{"error" => 1}], "no_such_atom_zq9" => 2})
      %{:ok => [%{error: 1}], "no_such_atom_zq9" => 2}
  """
  @spec atomize_keys(term()) :: term()
  def atomize_keys(term), do: convert_keys(term, &atomize_key/1)

  @doc """
  Recursively (through maps and lists) turns atom keys into strings. Structs
  and other terms are returned unchanged.

      iex> ElixirScope.Foundation.Utils.stringify_keys(%{"c" => 2, a: [%{b: 1}]})
      %{"a" => [%{"b" => 1}], "c" => 2}
  """
  @spec stringify_keys(term()) :: term()
  def stringify_keys(term), do: convert_keys(term, &stringify_key/1)

  defp convert_keys(%_{} = struct, _fun), do: struct

  defp convert_keys(map, fun) when is_map(map) do
    Map.new(map, fn {key, value} -> {fun.(key), convert_keys(value, fun)} end)
  end

  defp convert_keys(list, fun) when is_list(list), do: convert_list(list, fun)
  defp convert_keys(other, _fun), do: other

  # Handles improper lists too: the tail is converted like any element.
  defp convert_list([head | tail], fun), do: [convert_keys(head, fun) | convert_list(tail, fun)]
  defp convert_list([], _fun), do: []
  defp convert_list(tail, fun), do: convert_keys(tail, fun)

  defp atomize_key(key) when is_binary(key) do
    String.to_existing_atom(key)
  rescue
    ArgumentError -> key
  end

  defp atomize_key(key), do: key

  defp stringify_key(key) when is_atom(key), do: Atom.to_string(key)
  defp stringify_key(key), do: key

  ## Retry

  @doc """
  Calls `fun` until it succeeds, at most `:max_attempts` times.

  `{:ok, r}` gives `{:ok, r}`; `:ok` gives `{:ok, :ok}`; any other value `v`
  that is not `{:error, _}` gives `{:ok, v}`. After an `{:error, _}`, it
  sleeps `round(min(base_delay * 2^(attempt - 1), max_delay))` ms and tries
  again; once the last attempt failed it returns
  `{:error, :max_attempts_exceeded}`. Exceptions raised by `fun` propagate.

  Options:

    * `:max_attempts` - number of calls (default 3)
    * `:base_delay` - first delay in ms (default 100)
    * `:max_delay` - cap of the delay in ms (default 5000)

  Unknown options, or a list that is not a keyword list, raise
  `ArgumentError`; a non-list `opts` or a `fun` that is not a 0-arity
  function raises `FunctionClauseError`.

      iex> ElixirScope.Foundation.Utils.retry(fn -> :ok end)
      {:ok, :ok}
      iex> ElixirScope.Foundation.Utils.retry(fn -> {:error, :x} end, max_attempts: 2, base_delay: 0)
      {:error, :max_attempts_exceeded}
  """
  @spec retry((() -> term()), retry_opts()) :: {:ok, term()} | {:error, :max_attempts_exceeded}
  def retry(fun, opts \\ []) when is_function(fun, 0) and is_list(opts) do
    Keyword.keyword?(opts) ||
      raise ArgumentError, "expected a keyword list, got: #{inspect(opts)}"

    # Unknown keys are ignored, as in the original (drop-in callers).
    opts = Keyword.merge([max_attempts: 3, base_delay: 100, max_delay: 5000], opts)
    do_retry(fun, 1, Map.new(opts))
  end

  defp do_retry(fun, attempt, opts) do
    case fun.() do
      {:ok, result} ->
        {:ok, result}

      :ok ->
        {:ok, :ok}

      {:error, _reason} when attempt < opts.max_attempts ->
        Process.sleep(retry_delay(attempt, opts))
        do_retry(fun, attempt + 1, opts)

      {:error, _reason} ->
        {:error, :max_attempts_exceeded}

      other ->
        {:ok, other}
    end
  end

  defp retry_delay(_attempt, %{base_delay: base}) when base == 0, do: 0

  defp retry_delay(attempt, %{base_delay: base, max_delay: max}) do
    round(min(base * Integer.pow(2, attempt - 1), max))
  end

  ## Predicates

  @doc """
  True for `nil`, `""`, whitespace-only strings, `[]` and `%{}`; false for
  everything else (including `0` and `false`).

      iex> Enum.map([nil, "", "  \\n", [], %{}, 0, false, "a", [nil]], &ElixirScope.Foundation.Utils.blank?/1)
      [true, true, true, true, true, false, false, false, false]
  """
  @spec blank?(term()) :: boolean()
  def blank?(nil), do: true
  def blank?(""), do: true
  def blank?([]), do: true
  def blank?(map) when is_map(map) and map_size(map) == 0, do: true
  def blank?(string) when is_binary(string), do: String.trim(string) == ""
  def blank?(_), do: false

  @doc """
  `not blank?(term)`.

      iex> ElixirScope.Foundation.Utils.present?("x")
      true
  """
  @spec present?(term()) :: boolean()
  def present?(term), do: not blank?(term)

  @doc """
  `is_integer(value) and value > 0`.

      iex> Enum.map([1, 0, -1, 1.0, "1"], &ElixirScope.Foundation.Utils.valid_positive_integer?/1)
      [true, false, false, false, false]
  """
  @spec valid_positive_integer?(term()) :: boolean()
  def valid_positive_integer?(value), do: is_integer(value) and value > 0

  ## Formatting

  @doc """
  Formats a duration given in nanoseconds: seconds, milliseconds or
  microseconds with one decimal (`μ` is U+03BC), or whole nanoseconds.
  Raises `FunctionClauseError` for negative or non-integer values.

      iex> Enum.map([1_500_000_000, 2_500_000, 1_500, 999], &ElixirScope.Foundation.Utils.format_duration/1)
      ["1.5s", "2.5ms", "1.5μs", "999ns"]
      iex> ElixirScope.Foundation.Utils.format_duration(1_000_000_000)
      "1.0s"
  """
  @spec format_duration(non_neg_integer()) :: String.t()
  def format_duration(ns) when is_integer(ns) and ns >= 1_000_000_000,
    do: one_decimal(ns / 1_000_000_000) <> "s"

  def format_duration(ns) when is_integer(ns) and ns >= 1_000_000,
    do: one_decimal(ns / 1_000_000) <> "ms"

  def format_duration(ns) when is_integer(ns) and ns >= 1_000,
    do: one_decimal(ns / 1_000) <> "μs"

  def format_duration(ns) when is_integer(ns) and ns >= 0, do: "#{ns}ns"

  defp one_decimal(float), do: :erlang.float_to_binary(float, decimals: 1)

  @doc """
  Formats a byte count in B, KB, MB or GB (binary multiples, one decimal
  through `Float.round/2`). Raises `FunctionClauseError` for negative or
  non-integer values.

      iex> Enum.map([512, 1024, 1536, 1_048_576, 3_221_225_472], &ElixirScope.Foundation.Utils.format_bytes/1)
      ["512 B", "1.0 KB", "1.5 KB", "1.0 MB", "3.0 GB"]
  """
  @spec format_bytes(non_neg_integer()) :: String.t()
  def format_bytes(bytes) when is_integer(bytes) and bytes >= 0 and bytes < 1024,
    do: "#{bytes} B"

  def format_bytes(bytes) when is_integer(bytes) and bytes >= 0 and bytes < 1024 * 1024,
    do: "#{Float.round(bytes / 1024, 1)} KB"

  def format_bytes(bytes) when is_integer(bytes) and bytes >= 0 and bytes < 1024 * 1024 * 1024,
    do: "#{Float.round(bytes / (1024 * 1024), 1)} MB"

  def format_bytes(bytes) when is_integer(bytes) and bytes >= 0,
    do: "#{Float.round(bytes / (1024 * 1024 * 1024), 1)} GB"

  ## Measurements

  @doc """
  Runs `fun` and returns `{result, elapsed_microseconds}`. Exceptions
  propagate.

      iex> {result, us} = ElixirScope.Foundation.Utils.measure(fn -> :done end)
      iex> {result, is_integer(us) and us >= 0}
      {:done, true}
  """
  @spec measure((() -> result)) :: {result, non_neg_integer()} when result: term()
  def measure(fun) when is_function(fun, 0) do
    start = System.monotonic_time(:microsecond)
    result = fun.()
    {result, System.monotonic_time(:microsecond) - start}
  end

  @doc """
  Runs `fun` between two garbage collections of the calling process and
  returns `{result, {memory_before, memory_after, memory_after - memory_before}}`
  where the memory figures are `:erlang.memory(:total)` in bytes (VM-wide,
  so the difference may be negative).
  """
  @spec measure_memory((() -> result)) ::
          {result, {non_neg_integer(), non_neg_integer(), integer()}}
        when result: term()
  def measure_memory(fun) when is_function(fun, 0) do
    :erlang.garbage_collect()
    before = :erlang.memory(:total)
    result = fun.()
    :erlang.garbage_collect()
    after_run = :erlang.memory(:total)
    {result, {before, after_run, after_run - before}}
  end

  @doc """
  Statistics of the calling process: `%{memory, message_queue_len,
  reductions, garbage_collection, status}` (as `Process.info/2` reports them;
  `garbage_collection` is a keyword list).
  """
  @spec process_stats() :: %{
          memory: non_neg_integer(),
          message_queue_len: non_neg_integer(),
          reductions: non_neg_integer(),
          garbage_collection: keyword(),
          status: atom()
        }
  def process_stats do
    keys = [:memory, :message_queue_len, :reductions, :garbage_collection, :status]
    self() |> Process.info(keys) |> Map.new()
  end

  @doc """
  VM-wide statistics: `%{process_count, atom_count, memory, scheduler_count,
  scheduler_online}` where `memory` is the keyword list of `:erlang.memory/0`.
  """
  @spec system_stats() :: %{
          process_count: non_neg_integer(),
          atom_count: non_neg_integer(),
          memory: keyword(),
          scheduler_count: pos_integer(),
          scheduler_online: pos_integer()
        }
  def system_stats do
    %{
      process_count: :erlang.system_info(:process_count),
      atom_count: :erlang.system_info(:atom_count),
      memory: :erlang.memory(),
      scheduler_count: :erlang.system_info(:schedulers),
      scheduler_online: :erlang.system_info(:schedulers_online)
    }
  end
end
