defmodule ElixirScope.Foundation.UtilsTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.TestSupport.RandomTerms
  alias ElixirScope.Foundation.Utils

  doctest Utils

  @uuid ~r/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i

  describe "identifiers and clocks" do
    test "generate_id/0 returns distinct positive integers" do
      ids = for _ <- 1..2000, do: Utils.generate_id()
      assert Enum.all?(ids, &(is_integer(&1) and &1 > 0))
      assert length(Enum.uniq(ids)) == 2000
    end

    test "generate_id/0 is unique across concurrent processes" do
      ids =
        1..50
        |> Enum.map(fn _ -> Task.async(fn -> for _ <- 1..100, do: Utils.generate_id() end) end)
        |> Enum.flat_map(&Task.await/1)

      assert length(Enum.uniq(ids)) == 5000
    end

    test "generate_correlation_id/0 is a lowercase v4 UUID and random" do
      ids = for _ <- 1..500, do: Utils.generate_correlation_id()

      for id <- ids do
        assert byte_size(id) == 36
        assert id =~ @uuid
        assert id == String.downcase(id)
      end

      assert length(Enum.uniq(ids)) == 500
      # every variant nibble 8..b shows up over 500 samples
      variants = ids |> Enum.map(&String.at(&1, 19)) |> Enum.uniq() |> Enum.sort()
      assert variants == ["8", "9", "a", "b"]
    end

    test "monotonic_timestamp/0 is in milliseconds" do
      before = System.monotonic_time(:millisecond)
      ts = Utils.monotonic_timestamp()
      after_ts = System.monotonic_time(:millisecond)
      assert before <= ts and ts <= after_ts
    end

    test "wall_timestamp/0 is in nanoseconds" do
      before = System.system_time(:nanosecond)
      ts = Utils.wall_timestamp()
      after_ts = System.system_time(:nanosecond)
      assert before <= ts and ts <= after_ts
    end
  end

  describe "truncate_if_large/2" do
    test "small data is returned as is" do
      data = %{a: [1, 2, 3], b: "text"}
      assert Utils.truncate_if_large(data) == data
      assert Utils.truncate_if_large(data, :erlang.external_size(data)) == data
    end

    test "large data becomes a marker with the original size" do
      data = :binary.copy("x", 20_000)
      result = Utils.truncate_if_large(data)

      assert %{truncated: true, original_size: size, preview: preview, timestamp: %DateTime{}} =
               result

      assert size == :erlang.external_size(data)
      assert size > 10_000
      assert preview == :binary.copy("x", 100) <> "..."
    end

    test "one byte over the limit truncates" do
      data = :binary.copy("y", 100)
      size = :erlang.external_size(data)
      assert Utils.truncate_if_large(data, size) == data
      assert %{truncated: true, original_size: ^size} = Utils.truncate_if_large(data, size - 1)
    end

    test "binary preview counts graphemes" do
      data = String.duplicate("é", 200)
      assert Utils.truncate_if_large(data, 10).preview == String.duplicate("é", 100) <> "..."
    end

    test "list preview is the first 10 elements inspected" do
      data = Enum.to_list(1..5000)
      result = Utils.truncate_if_large(data)
      assert result.preview == Enum.map(1..10, &Integer.to_string/1)
    end

    test "map preview is 5 entries with their values" do
      data = Map.new(1..1000, &{&1, :binary.copy("v", 50)})
      %{preview: preview} = Utils.truncate_if_large(data)
      assert map_size(preview) == 5
      assert Enum.all?(preview, fn {k, v} -> data[k] == v end)
      # the first 5 entries in the map's own order, as Enum.take/2 gives them
      assert preview == data |> Enum.take(5) |> Map.new()
      small = Map.new(1..20, &{&1, :binary.copy("w", 1000)})
      assert Utils.truncate_if_large(small).preview == small |> Enum.take(5) |> Map.new()
    end

    test "other terms preview as an inspect string" do
      data = List.to_tuple(Enum.to_list(1..5000))
      %{preview: preview} = Utils.truncate_if_large(data)
      assert is_binary(preview)
      assert String.starts_with?(preview, "{1, 2, 3")
    end

    test "data whose preview cannot be built is returned unchanged" do
      improper = [:binary.copy("x", 20_000) | :tail]
      assert Utils.truncate_if_large(improper) == improper

      struct =
        %{DateTime.utc_now() | microsecond: {0, 0}} |> Map.put(:pad, :binary.copy("p", 20_000))

      assert Utils.truncate_if_large(struct) == struct
    end
  end

  describe "deep_size/1 and safe_inspect/1" do
    test "deep_size is the external term size" do
      for term <- [1, "abc", %{a: [1, 2]}, {self(), make_ref()}] do
        assert Utils.deep_size(term) == :erlang.external_size(term)
      end
    end

    test "deep_size and truncate_if_large are exact on big, deep and fun-holding terms" do
      :rand.seed(:exsss, {1, 2, 3})
      nested = Enum.map(1..50_000, &{&1, "v#{&1}", %{k: [&1]}})
      big_env = fn -> nested end

      terms =
        [
          nested,
          big_env,
          {big_env, [big_env | nested]},
          Enum.map(1..3_000, fn _ -> RandomTerms.term(3) end)
        ] ++
          RandomTerms.large() ++
          for(kind <- [:list, :map, :tuple, :improper], do: RandomTerms.deep(kind, 20_000))

      for term <- terms do
        size = :erlang.external_size(term)
        assert Utils.deep_size(term) == size
        assert %{truncated: true, original_size: ^size} = Utils.truncate_if_large(term, 1_000)
        assert Utils.truncate_if_large(term, size) == term
      end
    end

    test "safe_inspect limits collections and printables" do
      assert Utils.safe_inspect(%{a: 1}) == "%{a: 1}"
      long = Utils.safe_inspect(Enum.to_list(1..1000))
      assert String.ends_with?(long, "...]")
      assert length(String.split(long, ",")) == 101
      text = Utils.safe_inspect(String.duplicate("a", 1000))
      assert text == inspect(String.duplicate("a", 100)) <> " <> ..."
    end
  end

  describe "nested maps" do
    test "deep_merge/2 merges maps recursively and lets the right side win otherwise" do
      assert Utils.deep_merge(%{a: %{b: 1, c: %{d: 1}}}, %{a: %{c: %{e: 2}}, f: 3}) ==
               %{a: %{b: 1, c: %{d: 1, e: 2}}, f: 3}

      assert Utils.deep_merge(%{a: %{b: 1}}, %{a: 5}) == %{a: 5}
      assert Utils.deep_merge(%{a: 1}, %{a: %{b: 2}}) == %{a: %{b: 2}}
      assert Utils.deep_merge(:x, %{a: 1}) == %{a: 1}
      assert Utils.deep_merge(%{a: 1}, nil) == nil
      assert Utils.deep_merge(%{}, %{}) == %{}
    end

    test "get_nested/3" do
      map = %{"s" => 2, a: %{b: %{c: 1}, f: false, n: nil}}
      assert Utils.get_nested(map, [:a, :b, :c]) == 1
      assert Utils.get_nested(map, ["s"]) == 2
      assert Utils.get_nested(map, []) == map
      assert Utils.get_nested(map, [:a, :f], :d) == false
      assert Utils.get_nested(map, [:a, :n], :d) == :d
      assert Utils.get_nested(map, [:a, :missing], :d) == :d
      assert Utils.get_nested(map, [:a, :b, :c, :deeper], :d) == :d
      assert Utils.get_nested(map, [:x, :y]) == nil
      assert Utils.get_nested(:not_a_map, [:a], :d) == :d
      assert Utils.get_nested(:not_a_map, [], :d) == :not_a_map
    end

    test "put_nested/3" do
      assert Utils.put_nested(%{}, [:a, :b], 1) == %{a: %{b: 1}}
      assert Utils.put_nested(%{a: %{c: 2}}, [:a, :b], 1) == %{a: %{b: 1, c: 2}}
      assert Utils.put_nested(%{a: 1}, [:a], 2) == %{a: 2}
      assert Utils.put_nested(%{a: 1}, [], :replaced) == :replaced
      assert_raise FunctionClauseError, fn -> Utils.put_nested(%{a: 1}, [:a, :b], 2) end
      assert_raise FunctionClauseError, fn -> Utils.put_nested(%{a: nil}, [:a, :b], 2) end
      assert_raise FunctionClauseError, fn -> Utils.put_nested(:x, [:a], 2) end
    end
  end

  describe "strings and keys" do
    test "sanitize_string/1" do
      assert Utils.sanitize_string("line1\nline2\r\nline3\ttab") == "line1 line2 line3 tab"
      assert Utils.sanitize_string("   many    spaces   ") == "many spaces"
      assert Utils.sanitize_string("") == ""
      assert Utils.sanitize_string("\r\n\t") == ""
      assert Utils.sanitize_string("héllo\t\twörld") == "héllo wörld"
      assert_raise FunctionClauseError, fn -> Utils.sanitize_string(:atom) end
    end

    test "atomize_keys/1 uses existing atoms only" do
      unknown = "h1_no_such_atom_#{System.unique_integer([:positive])}"
      input = %{"ok" => %{"error" => [%{"a" => 1}]}, unknown => 1, 5 => "x"}

      assert Utils.atomize_keys(input) ==
               %{:ok => %{error: [%{a: 1}]}, unknown => 1, 5 => "x"}

      assert_raise ArgumentError, fn -> String.to_existing_atom(unknown) end
    end

    test "stringify_keys/1 converts atom keys recursively" do
      assert Utils.stringify_keys(%{"d" => 1, 2 => 3, a: [%{b: %{c: 1}}], nil: 0}) ==
               %{"a" => [%{"b" => %{"c" => 1}}], "d" => 1, 2 => 3, "nil" => 0}

      assert Utils.stringify_keys(a: 1) == [a: 1]
      assert Utils.stringify_keys(:x) == :x
    end

    test "key conversion leaves structs alone and handles improper lists" do
      now = DateTime.utc_now()
      assert Utils.stringify_keys(%{a: now}) == %{"a" => now}
      assert Utils.atomize_keys([%{"ok" => 1} | %{"error" => 2}]) == [%{ok: 1} | %{error: 2}]
    end
  end

  describe "retry/2" do
    test "success values" do
      assert Utils.retry(fn -> {:ok, 1} end) == {:ok, 1}
      assert Utils.retry(fn -> :ok end) == {:ok, :ok}
      assert Utils.retry(fn -> :something end) == {:ok, :something}
      assert Utils.retry(fn -> {:error, :x, :y} end) == {:ok, {:error, :x, :y}}
    end

    test "retries errors until success" do
      counter = :counters.new(1, [])

      fun = fn ->
        :counters.add(counter, 1, 1)
        if :counters.get(counter, 1) < 3, do: {:error, :not_yet}, else: {:ok, :done}
      end

      assert Utils.retry(fun, base_delay: 1) == {:ok, :done}
      assert :counters.get(counter, 1) == 3
    end

    test "gives up after max_attempts calls" do
      for attempts <- [1, 2, 5] do
        counter = :counters.new(1, [])

        fun = fn ->
          :counters.add(counter, 1, 1)
          {:error, :always}
        end

        assert Utils.retry(fun, max_attempts: attempts, base_delay: 0) ==
                 {:error, :max_attempts_exceeded}

        assert :counters.get(counter, 1) == attempts
      end
    end

    test "default is 3 attempts" do
      counter = :counters.new(1, [])
      fun = fn -> :counters.add(counter, 1, 1) && {:error, :x} end
      assert Utils.retry(fun, base_delay: 0) == {:error, :max_attempts_exceeded}
      assert :counters.get(counter, 1) == 3
    end

    test "sleeps base_delay * 2^(attempt - 1) between attempts (lower bound only)" do
      started = System.monotonic_time(:millisecond)
      assert {:error, _} = Utils.retry(fn -> {:error, :x} end, max_attempts: 3, base_delay: 20)
      # 20 + 40 ms of sleeping at least; no sleep after the last attempt
      assert System.monotonic_time(:millisecond) - started >= 60
    end

    test "exceptions propagate" do
      assert_raise RuntimeError, "boom", fn -> Utils.retry(fn -> raise "boom" end) end
    end

    test "unknown options are ignored; a non-keyword list raises ArgumentError" do
      assert {:ok, :ok} = Utils.retry(fn -> :ok end, bogus: 1)
      assert_raise ArgumentError, fn -> Utils.retry(fn -> :ok end, [[1]]) end
      assert_raise FunctionClauseError, fn -> Utils.retry(fn -> :ok end, :opts) end
      assert_raise FunctionClauseError, fn -> Utils.retry(:not_a_fun) end
    end
  end

  describe "predicates" do
    test "blank?/1 and present?/1 table" do
      blank = [nil, "", " ", "\t\n  ", [], %{}]
      present = [0, false, true, "a", " a ", [nil], %{a: nil}, :atom, {}, 0.0, self()]

      for value <- blank do
        assert Utils.blank?(value), "expected blank: #{inspect(value)}"
        refute Utils.present?(value)
      end

      for value <- present do
        refute Utils.blank?(value), "expected present: #{inspect(value)}"
        assert Utils.present?(value)
      end
    end

    test "valid_positive_integer?/1" do
      assert Utils.valid_positive_integer?(1)
      assert Utils.valid_positive_integer?(Integer.pow(10, 30))
      for v <- [0, -1, 1.0, "1", nil, :one], do: refute(Utils.valid_positive_integer?(v))
    end
  end

  describe "formatting" do
    test "format_duration/1" do
      assert Utils.format_duration(0) == "0ns"
      assert Utils.format_duration(999) == "999ns"
      assert Utils.format_duration(1_000) == "1.0μs"
      assert Utils.format_duration(1_500) == "1.5μs"
      assert Utils.format_duration(999_999) == "1000.0μs"
      assert Utils.format_duration(2_500_000) == "2.5ms"
      assert Utils.format_duration(1_000_000_000) == "1.0s"
      assert Utils.format_duration(1_500_000_000) == "1.5s"
      assert Utils.format_duration(90_000_000_000) == "90.0s"
      # U+03BC, not the micro sign U+00B5
      assert Utils.format_duration(1_500) == <<"1.5", 0xCE, 0xBC, "s">>
      assert_raise FunctionClauseError, fn -> Utils.format_duration(-1) end
      assert_raise FunctionClauseError, fn -> Utils.format_duration(1.5) end
    end

    test "format_bytes/1" do
      assert Utils.format_bytes(0) == "0 B"
      assert Utils.format_bytes(1023) == "1023 B"
      assert Utils.format_bytes(1024) == "1.0 KB"
      assert Utils.format_bytes(1536) == "1.5 KB"
      assert Utils.format_bytes(1_048_575) == "1024.0 KB"
      assert Utils.format_bytes(1_048_576) == "1.0 MB"
      assert Utils.format_bytes(1_073_741_824) == "1.0 GB"
      assert Utils.format_bytes(5 * 1_073_741_824 + 536_870_912) == "5.5 GB"
      assert_raise FunctionClauseError, fn -> Utils.format_bytes(-1) end
      assert_raise FunctionClauseError, fn -> Utils.format_bytes("1") end
    end
  end

  describe "measurements" do
    test "measure/1 returns the result and microseconds" do
      {result, micros} = Utils.measure(fn -> Process.sleep(5) && :slept end)
      assert result == :slept
      assert is_integer(micros)
      # lower bound only: it slept 5 ms
      assert micros >= 5_000
    end

    test "measure_memory/1 returns before, after and their difference" do
      {result, {before, after_run, diff}} = Utils.measure_memory(fn -> :x end)
      assert result == :x
      assert is_integer(before) and before > 0
      assert is_integer(after_run) and after_run > 0
      assert diff == after_run - before
    end

    test "process_stats/0" do
      send(self(), :queued)
      stats = Utils.process_stats()

      assert Map.keys(stats) |> Enum.sort() ==
               [:garbage_collection, :memory, :message_queue_len, :reductions, :status]

      assert stats.message_queue_len == 1
      assert stats.status == :running
      assert Keyword.keyword?(stats.garbage_collection)
      assert is_integer(stats.memory) and is_integer(stats.reductions)
    end

    test "system_stats/0" do
      stats = Utils.system_stats()

      assert Map.keys(stats) |> Enum.sort() ==
               [:atom_count, :memory, :process_count, :scheduler_count, :scheduler_online]

      assert stats.process_count > 0 and stats.atom_count > 0
      assert stats.memory[:total] > 0
      assert stats.scheduler_online == System.schedulers_online()
      assert stats.scheduler_count == System.schedulers()
    end
  end

  describe "random and hostile input (seeded)" do
    setup do
      :rand.seed(:exsss, {1, 2, 3})
      :ok
    end

    test "total functions return values for any term" do
      for _ <- 1..1500 do
        term = RandomTerms.term(4)
        other = RandomTerms.term(3)

        assert Utils.deep_size(term) == :erlang.external_size(term)
        assert is_binary(Utils.safe_inspect(term))
        assert is_boolean(Utils.blank?(term))
        assert Utils.present?(term) == not Utils.blank?(term)
        assert is_boolean(Utils.valid_positive_integer?(term))
        check_truncate(term)
        check_merge(term, other)
        check_get_nested(term, other)
        check_keys(term)
      end
    end

    test "partial functions return a value or their documented exception" do
      for _ <- 1..1500 do
        term = RandomTerms.term(3)
        path = Enum.random([[], [:a], [:a, :b], ["ok"], [:a | :b], term])

        outcome(fn -> Utils.put_nested(term, path, :v) end, FunctionClauseError)
        |> check_put_nested(term, path)

        check_sanitize(term)
        check_formatter(&Utils.format_duration/1, term)
        check_formatter(&Utils.format_bytes/1, term)
      end
    end

    test "retry/2 maps any return value" do
      for _ <- 1..300 do
        value = RandomTerms.term(2)
        result = Utils.retry(fn -> value end, max_attempts: 2, base_delay: 0)

        case value do
          {:ok, r} -> assert result == {:ok, r}
          :ok -> assert result == {:ok, :ok}
          {:error, _} -> assert result == {:error, :max_attempts_exceeded}
          v -> assert result == {:ok, v}
        end
      end
    end

    test "deep (10k levels) terms" do
      for kind <- [:list, :map, :tuple, :improper] do
        term = RandomTerms.deep(kind)
        size = :erlang.external_size(term)

        assert Utils.deep_size(term) == size
        assert is_binary(Utils.safe_inspect(term))
        refute Utils.blank?(term)
        assert %{truncated: true, original_size: ^size} = maybe_marker(term)
        assert Utils.stringify_keys(Utils.atomize_keys(term)) == Utils.stringify_keys(term)
        assert Utils.deep_merge(term, term) == term
      end

      map = RandomTerms.deep(:map)
      path = for i <- 10_000..1//-1, do: "k#{rem(i, 3)}"
      assert Utils.get_nested(map, path) == :leaf
      assert Utils.get_nested(map, path ++ [:more], :d) == :d

      path = List.duplicate(:k, 10_000)
      nested = Utils.put_nested(%{}, path, :bottom)
      assert Utils.get_nested(nested, path) == :bottom

      assert Utils.deep_merge(nested, Utils.put_nested(%{}, path, :new)) |> Utils.get_nested(path) ==
               :new
    end

    test "large (about 1 MB) terms" do
      for term <- RandomTerms.large() do
        size = :erlang.external_size(term)
        assert Utils.deep_size(term) == size

        assert %{truncated: true, original_size: ^size, preview: preview} =
                 Utils.truncate_if_large(term)

        assert Utils.deep_size(preview) < 10_000
        assert byte_size(Utils.safe_inspect(term)) < 2_000
        refute Utils.blank?(term)
      end

      text = String.duplicate(" a\r\n\tb ", 100_000)
      assert Utils.sanitize_string(text) == String.trim(String.duplicate("a b ", 100_000))
    end
  end

  defp maybe_marker(term), do: Utils.truncate_if_large(term)

  # {:ok, value} or {:raised, exception}; any other exception fails the test.
  defp outcome(fun, allowed) do
    {:ok, fun.()}
  rescue
    e ->
      assert e.__struct__ in List.wrap(allowed),
             "unexpected #{inspect(e.__struct__)}: #{Exception.message(e)}"

      {:raised, e}
  end

  defp check_truncate(term) do
    max = Enum.random([0, 10, 100, 10_000])
    size = :erlang.external_size(term)
    result = Utils.truncate_if_large(term, max)

    if size > max do
      # a marker, or the data itself when no preview can be built
      assert result == term or
               match?(%{truncated: true, original_size: ^size, timestamp: %DateTime{}}, result)
    else
      assert result == term
    end
  end

  defp check_merge(left, right) do
    merged = Utils.deep_merge(left, right)

    if is_map(left) and is_map(right) do
      assert Map.keys(merged) |> Enum.sort() ==
               Enum.uniq(Map.keys(left) ++ Map.keys(right)) |> Enum.sort()
    else
      assert merged == right
    end
  end

  defp check_get_nested(term, key) do
    assert Utils.get_nested(term, []) == term
    expected = if is_map(term) and Map.get(term, key) != nil, do: Map.get(term, key), else: :d
    assert Utils.get_nested(term, [key], :d) == expected
    unless is_list(key), do: assert(Utils.get_nested(term, key, :d) == :d)
  end

  defp check_keys(term) do
    refute any_key?(Utils.stringify_keys(term), &is_atom/1)
    # a string key left by atomize_keys never names an existing atom
    refute any_key?(Utils.atomize_keys(term), &existing_atom_name?/1)
  end

  defp existing_atom_name?(key) when is_binary(key) do
    is_atom(String.to_existing_atom(key))
  rescue
    ArgumentError -> false
  end

  defp existing_atom_name?(_key), do: false

  # Walks maps and lists the way the key converters do (structs and tuples are leaves).
  defp any_key?(%_{}, _pred), do: false

  defp any_key?(map, pred) when is_map(map),
    do: Enum.any?(map, fn {k, v} -> pred.(k) or any_key?(v, pred) end)

  defp any_key?([h | t], pred), do: any_key?(h, pred) or any_key?(t, pred)
  defp any_key?(_, _pred), do: false

  defp check_put_nested({:ok, result}, term, path) do
    assert put_allowed?(term, path)
    assert Utils.get_nested(result, path) == :v
  end

  defp check_put_nested({:raised, _}, term, path), do: refute(put_allowed?(term, path))

  # Reference model: put_nested succeeds iff the path is a proper list and
  # every existing value on the way is a map.
  defp put_allowed?(_term, []), do: true
  defp put_allowed?(term, [_key]), do: is_map(term)

  defp put_allowed?(term, [key | rest]) when is_map(term) and is_list(rest),
    do: put_allowed?(Map.get(term, key, %{}), rest)

  defp put_allowed?(_term, _path), do: false

  defp check_sanitize(term) when is_binary(term) do
    result = Utils.sanitize_string(term)
    refute result =~ ~r/[\r\n\t]/
    refute result =~ ~r/\s\s/
    assert result == String.trim(result)
  end

  defp check_sanitize(term) do
    assert_raise FunctionClauseError, fn -> Utils.sanitize_string(term) end
  end

  defp check_formatter(fun, term) do
    if is_integer(term) and term >= 0 do
      assert is_binary(fun.(term))
    else
      assert_raise FunctionClauseError, fn -> fun.(term) end
    end
  end
end
