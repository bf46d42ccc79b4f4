defmodule ElixirScope.Foundation.Native.MetricsTest do
  # The metrics_* and json_* NIFs: happy path, error shapes, ArgumentError on
  # wrong argument types, exact round trips of hostile terms, no :nif_panicked.
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Native

  defp handle(max \\ 100), do: Native.metrics_new(max)
  defp now, do: System.monotonic_time()

  defp entry(h, name) do
    {:ok, entries} = Native.metrics_snapshot(h)
    Enum.find(entries, fn {n, _, _, _, _} -> n == name end)
  end

  defp deep(0, acc), do: acc
  defp deep(n, acc), do: deep(n - 1, [acc])

  defp no_panic(fun) do
    fun.()
  rescue
    ArgumentError -> :badarg
    e in ErlangError -> flunk("NIF raised #{inspect(e.original)}")
  end

  describe "metrics_new/1" do
    test "returns a handle; rejects non-positive-integer sizes" do
      assert is_reference(handle())
      assert_raise ArgumentError, fn -> Native.metrics_new(-1) end
      assert_raise ArgumentError, fn -> Native.metrics_new(:big) end
    end
  end

  describe "metrics_record/5" do
    test "creates then merges an entry by the recording rules" do
      h = handle()
      assert {:ok, false} = Native.metrics_record(h, [:a, :b], %{gauge: 1, d: 10}, %{m: 1}, 5)
      assert {:ok, false} = Native.metrics_record(h, [:a, :b], %{gauge: 2, d: 20, s: "x"}, %{}, 7)
      assert {:ok, false} = Native.metrics_record(h, [:a, :b], %{counter: 3}, %{}, 6)
      assert {:ok, false} = Native.metrics_record(h, [:a, :b], %{counter: 4, s: :y}, %{}, 6)

      assert {[:a, :b], 4, 7, measurements, %{m: 1}} = entry(h, [:a, :b])
      assert measurements == %{gauge: 2, d: 15.0, s: :y, counter: 7}
    end

    test "keeps non-numeric values and metadata exactly (pids, refs, funs, deep terms)" do
      h = handle()
      fun = fn x -> x + 1 end
      nested = deep(10_000, :bottom)
      big = 2 ** 200

      metadata = %{
        pid: self(),
        ref: make_ref(),
        fun: fun,
        nested: nested,
        bin: :binary.copy("é", 100_000),
        tuple: {1, "two", [3.0]},
        big: big
      }

      measurements = %{"string key" => {:t, self()}, {:tuple, :key} => [1, 2], big: big}
      # Over the normal-scheduler budget (and a fun): declined, nothing recorded.
      assert :dirty = Native.metrics_record(h, [:hostile], measurements, metadata, 1)
      assert entry(h, [:hostile]) == nil
      assert {:ok, false} = Native.metrics_record_dirty(h, [:hostile], measurements, metadata, 1)
      assert {[:hostile], 1, 1, ^measurements, ^metadata} = entry(h, [:hostile])
    end

    test "integers wider than 64 bits are merged as floats" do
      h = handle()
      {:ok, _} = Native.metrics_record(h, [:w], %{counter: 2 ** 70}, %{}, 1)
      assert {_, 1, _, %{counter: value}, _} = entry(h, [:w])
      assert value == 2 ** 70 * 1.0
    end

    test "reports an attached handler for the exact name only" do
      h = handle()
      :ok = Native.metrics_attach(h, [[:x, :y]])
      assert {:ok, true} = Native.metrics_record(h, [:x, :y], %{}, %{}, 1)
      assert {:ok, false} = Native.metrics_record(h, [:x], %{}, %{}, 1)
    end

    test "ArgumentError on wrong argument types" do
      h = handle()
      assert_raise ArgumentError, fn -> Native.metrics_record(h, :a, %{}, %{}, 1) end
      assert_raise ArgumentError, fn -> Native.metrics_record(h, ["a"], %{}, %{}, 1) end
      assert_raise ArgumentError, fn -> Native.metrics_record(h, [:a | :b], %{}, %{}, 1) end
      assert_raise ArgumentError, fn -> Native.metrics_record(h, [:a], [], %{}, 1) end
      assert_raise ArgumentError, fn -> Native.metrics_record(h, [:a], %{}, %{}, 1.5) end
      assert_raise ArgumentError, fn -> Native.metrics_record(make_ref(), [:a], %{}, %{}, 1) end
      # Atoms outside Latin-1 cannot be named through the OTP 25 NIF API.
      assert_raise ArgumentError, fn -> Native.metrics_record(h, [:日本], %{}, %{}, 1) end
    end
  end

  describe "metrics_emit_counter/5" do
    test "adds integers exactly, floats as floats, and keeps the first metadata" do
      h = handle()
      for i <- 1..10, do: {:ok, false} = Native.metrics_emit_counter(h, [:c], i, %{i: i}, i)
      assert {[:c], 10, 10, %{counter: 55}, %{i: 1}} = entry(h, [:c])
      {:ok, _} = Native.metrics_emit_counter(h, [:c], 0.5, %{}, 11)
      assert {_, 11, 11, %{counter: 55.5}, _} = entry(h, [:c])
      {:ok, _} = Native.metrics_emit_counter(h, [:c], 1, %{}, 12)
      assert {_, 12, 12, %{counter: 56.5}, _} = entry(h, [:c])
    end

    test "an overflowing integer sum becomes a float" do
      h = handle()
      max = 9_223_372_036_854_775_807
      {:ok, _} = Native.metrics_emit_counter(h, [:o], max, %{}, 1)
      {:ok, _} = Native.metrics_emit_counter(h, [:o], 1, %{}, 2)
      assert {_, 2, _, %{counter: sum}, _} = entry(h, [:o])
      assert is_float(sum) and sum == (max + 1) * 1.0
    end

    test "ArgumentError on wrong argument types" do
      h = handle()
      assert_raise ArgumentError, fn -> Native.metrics_emit_counter(h, "c", 1, %{}, 1) end
      assert_raise ArgumentError, fn -> Native.metrics_emit_counter(h, [:c], 1, %{}, nil) end
      assert_raise ArgumentError, fn -> Native.metrics_emit_counter(:nope, [:c], 1, %{}, 1) end
    end
  end

  describe "dirty twins (metrics_record_dirty/5, metrics_emit_counter_dirty/5)" do
    test "over the 64 KiB budget the normal NIFs answer :dirty and record nothing" do
      h = handle()
      big = %{bin: :binary.copy("x", 70_000)}
      assert :dirty = Native.metrics_emit_counter(h, [:b], 1, big, 1)
      assert :dirty = Native.metrics_emit_counter_now(h, [:b], 1, big)
      assert :dirty = Native.metrics_record(h, [:r], %{d: 1}, big, 1)
      assert :dirty = Native.metrics_record(h, [:r], %{d: big}, %{}, 1)
      assert {0, 0, 0, _} = Native.metrics_status(h)
      assert {:ok, false} = Native.metrics_emit_counter_dirty(h, [:b], 1, big, 1)
      assert {:ok, false} = Native.metrics_record_dirty(h, [:r], %{d: big}, big, 1)
      assert {[:b], 1, 1, %{counter: 1}, ^big} = entry(h, [:b])
      assert {[:r], 1, 1, %{d: ^big}, ^big} = entry(h, [:r])
      # Known names: the metadata is not encoded again, so no decline.
      assert {:ok, false} = Native.metrics_emit_counter(h, [:b], 1, big, 2)
      assert :ok = Native.metrics_emit_counter_now(h, [:b], 1, big)
    end

    test "errors and ArgumentError as the normal NIFs" do
      h = Native.metrics_new(0)
      assert {:ok, false} = Native.metrics_emit_counter_dirty(h, [:full], 1, %{}, 1)
      assert {0, 1, 0, 0} = Native.metrics_status(h)
      assert_raise ArgumentError, fn -> Native.metrics_record_dirty(h, :a, %{}, %{}, 1) end
      assert_raise ArgumentError, fn -> Native.metrics_record_dirty(h, [:a], [], %{}, 1) end

      assert_raise ArgumentError, fn ->
        Native.metrics_emit_counter_dirty(h, [:a | :b], 1, %{}, 1)
      end

      assert_raise ArgumentError, fn -> Native.metrics_emit_counter_dirty(h, [:a], 1, %{}, :t) end
      assert_raise ArgumentError, fn -> Native.metrics_emit_counter_dirty(:h, [:a], 1, %{}, 1) end
    end
  end

  describe "metrics_snapshot/1, metrics_status/1, cap" do
    test "snapshot lists every entry; status counts entries, drops and handlers" do
      h = handle(3)
      for i <- 1..5, do: Native.metrics_emit_counter(h, [:n, :"m#{i}"], 1, %{}, now())
      :ok = Native.metrics_attach(h, [[:n, :m1], [:other]])
      assert {:ok, entries} = Native.metrics_snapshot(h)
      assert length(entries) == 3
      assert Native.metrics_status(h) == {3, 2, 2, 3}
      assert_raise ArgumentError, fn -> Native.metrics_snapshot(:nope) end
      assert_raise ArgumentError, fn -> Native.metrics_status("x") end
    end

    test "metrics_snapshot_small/1 reads a small store on the normal scheduler, else :dirty" do
      h = handle(1_000)
      for i <- 1..64, do: {:ok, _} = Native.metrics_emit_counter(h, [:s, :"n#{i}"], 1, %{i: i}, 5)
      {:ok, _} = Native.metrics_record(h, [:s, :n1], %{tag: {:a, "b"}}, %{}, 6)
      {:ok, small} = Native.metrics_snapshot_small(h)
      {:ok, full} = Native.metrics_snapshot(h)
      assert length(small) == 64
      assert Enum.sort(small) == Enum.sort(full)
      assert {[:s, :n1], 2, 6, %{counter: 1, tag: {:a, "b"}}, %{i: 1}} in small

      {:ok, _} = Native.metrics_emit_counter(h, [:s, :n65], 1, %{}, 7)
      assert Native.metrics_snapshot_small(h) == :dirty

      big = handle()

      {:ok, _} =
        Native.metrics_record_dirty(
          big,
          [:big],
          %{gauge: 1},
          %{blob: :binary.copy("x", 70_000)},
          1
        )

      assert Native.metrics_snapshot_small(big) == :dirty
      assert {:ok, [{[:big], 1, 1, _, _}]} = Native.metrics_snapshot(big)
      assert_raise ArgumentError, fn -> Native.metrics_snapshot_small(:nope) end
    end
  end

  describe "metrics_cleanup/2 and metrics_clear/1" do
    test "cleanup removes entries whose last timestamp is <= the cutoff" do
      h = handle()
      {:ok, _} = Native.metrics_emit_counter(h, [:old], 1, %{}, 100)
      {:ok, _} = Native.metrics_emit_counter(h, [:new], 1, %{}, 200)
      assert Native.metrics_cleanup(h, 100) == 1
      assert {:ok, [{[:new], 1, 200, _, _}]} = Native.metrics_snapshot(h)
      assert Native.metrics_clear(h) == 1
      assert {:ok, []} = Native.metrics_snapshot(h)
      assert {0, 0, 0, 100} = Native.metrics_status(h)
      assert_raise ArgumentError, fn -> Native.metrics_cleanup(h, :now) end
      assert_raise ArgumentError, fn -> Native.metrics_clear(self()) end
    end
  end

  describe "metrics_attach/2, metrics_detach/2, metrics_clear_handlers/1" do
    test "attach and detach by name; bad names raise and attach nothing" do
      h = handle()
      assert :ok = Native.metrics_attach(h, [[:a], [:b, :c]])
      assert :ok = Native.metrics_detach(h, [[:a], [:never]])
      assert {_, _, 1, _} = Native.metrics_status(h)
      assert_raise ArgumentError, fn -> Native.metrics_attach(h, [[:ok], ["bad"]]) end
      assert_raise ArgumentError, fn -> Native.metrics_attach(h, [[:ok] | :improper]) end
      assert_raise ArgumentError, fn -> Native.metrics_detach(h, :x) end
      assert {_, _, 1, _} = Native.metrics_status(h)
      assert :ok = Native.metrics_clear_handlers(h)
      assert {_, _, 0, _} = Native.metrics_status(h)
      assert_raise ArgumentError, fn -> Native.metrics_clear_handlers(1) end
    end
  end

  describe "concurrency" do
    test "8 processes emitting the same counter give exact totals" do
      h = handle()

      1..8
      |> Enum.map(fn _ ->
        Task.async(fn ->
          for _ <- 1..2_000, do: {:ok, _} = Native.metrics_emit_counter(h, [:hot], 1, %{}, now())
        end)
      end)
      |> Task.await_many(30_000)

      assert {[:hot], 16_000, _, %{counter: 16_000}, %{}} = entry(h, [:hot])
    end
  end

  describe "json_encode/1" do
    test "encodes maps, lists, tuples, atoms and opaque terms" do
      assert {:ok, json} = Native.json_encode(%{a: [1, 2.5, nil, true], b: {"x", :y}})
      assert json == ~s({"a":[1,2.5,null,true],"b":["x","y"]})
      assert {:ok, ~s(["#PID"])} = Native.json_encode([self()])
    end

    test "encodes 100 levels; {kind, detail} beyond that and on improper lists" do
      assert {:ok, json} = Native.json_encode(deep(100, 1))
      assert json == String.duplicate("[", 100) <> "1" <> String.duplicate("]", 100)

      for depth <- [101, 600, 100_000] do
        assert {:error, {:invalid_input, detail}} = Native.json_encode(deep(depth, 1))
        assert detail == "term nested deeper than 100 levels"
      end

      assert {:error, {:invalid_input, _}} = Native.json_encode(%{a: {[1 | 2]}})
    end
  end

  describe "json_decode/1" do
    test "decodes with existing atoms as keys and unknown keys as strings" do
      json = ~s({"ok": [1, 2.5, null, false], "h5_surely_not_an_atom_zzq": {"error": "x"}})
      assert {:ok, decoded} = Native.json_decode(json)

      assert decoded == %{
               :ok => [1, 2.5, nil, false],
               "h5_surely_not_an_atom_zzq" => %{error: "x"}
             }

      assert_raise ArgumentError, fn -> String.to_existing_atom("h5_surely_not_an_atom_zzq") end
    end

    test "{kind, detail} on invalid or too deep JSON; ArgumentError on non-binaries" do
      assert {:error, {:invalid_input, detail}} = Native.json_decode("{nope")
      assert is_binary(detail)
      assert {:error, {:invalid_input, _}} = Native.json_decode(String.duplicate("[", 100_000))
      nested = String.duplicate("[", 120) <> String.duplicate("]", 120)
      assert {:ok, decoded} = Native.json_decode(nested)
      assert decoded == deep(119, [])
      assert_raise ArgumentError, fn -> Native.json_decode(:json) end
      assert_raise ArgumentError, fn -> Native.json_decode(~c"[]") end
    end
  end

  describe "hostile input" do
    test "random terms in every argument position never panic" do
      :rand.seed(:exsss, {1, 2, 3})
      h = handle(50)

      for _ <- 1..300 do
        [a, b, c, d] = for _ <- 1..4, do: random_term(3)
        no_panic(fn -> Native.metrics_record(h, a, b, c, d) end)
        no_panic(fn -> Native.metrics_record(h, [:r], %{a => b}, c, 1) end)
        no_panic(fn -> Native.metrics_emit_counter(h, [:r], a, b, 1) end)
        no_panic(fn -> Native.metrics_attach(h, a) end)
        no_panic(fn -> Native.metrics_detach(h, a) end)
        no_panic(fn -> Native.metrics_new(a) end)
        no_panic(fn -> Native.metrics_cleanup(h, a) end)
        no_panic(fn -> Native.json_encode(a) end)
        no_panic(fn -> Native.json_decode(a) end)
      end

      assert {:ok, entries} = Native.metrics_snapshot(h)
      assert Enum.all?(entries, fn {name, _, _, _, _} -> is_list(name) end)
    end
  end

  defp random_term(0), do: random_leaf()

  defp random_term(depth) do
    case :rand.uniform(6) do
      1 -> for _ <- 1..:rand.uniform(3), do: random_term(depth - 1)
      2 -> Map.new(1..:rand.uniform(3), fn _ -> {random_leaf(), random_term(depth - 1)} end)
      3 -> {random_term(depth - 1), random_leaf()}
      4 -> [random_leaf() | random_leaf()]
      _ -> random_leaf()
    end
  end

  defp random_leaf do
    Enum.random([
      :rand.uniform(1000),
      -(2 ** 80),
      2 ** 300,
      1.5,
      :atom,
      :counter,
      :gauge,
      "bin",
      <<1::3>>,
      self(),
      make_ref(),
      fn -> :ok end,
      [],
      %{},
      "{\"a\": 1}",
      "[1,"
    ])
  end
end

defmodule ElixirScope.Foundation.NativeFallbackTest do
  # The fallback_* NIFs share one node-wide buffer with
  # Events.GracefulDegradation: not async.
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.Native

  setup do
    {:ok, _} = Native.fallback_take()
    on_exit(fn -> Native.fallback_take() end)
  end

  test "push keeps terms exactly, newest first, at most 100; take empties" do
    term = %{pid: self(), ref: make_ref(), data: {1, "two"}}
    assert {:ok, 1} = Native.fallback_push(term)
    assert {:ok, [^term]} = Native.fallback_list()

    for i <- 1..150, do: {:ok, _} = Native.fallback_push(i)
    assert {:ok, list} = Native.fallback_list()
    assert list == Enum.to_list(150..51//-1)
    assert {:ok, ^list} = Native.fallback_take()
    assert {:ok, []} = Native.fallback_list()
  end

  test "the buffer outlives the process that filled it" do
    {pid, ref} = spawn_monitor(fn -> Native.fallback_push({:from, self()}) end)
    assert_receive {:DOWN, ^ref, :process, ^pid, :normal}
    assert {:ok, [{:from, ^pid}]} = Native.fallback_list()
  end

  test "accepts any term (funs, 10 000-deep nesting); there is no error path" do
    deep = Enum.reduce(1..10_000, :bottom, fn _, acc -> [acc] end)
    fun = fn -> :any_term end
    assert {:ok, 1} = Native.fallback_push(fun)
    assert {:ok, 2} = Native.fallback_push(deep)
    assert {:ok, [^deep, ^fun]} = Native.fallback_take()
  end
end

defmodule ElixirScope.Foundation.NativeMetricsMemoryTest do
  # Reads the native heap counter: not async, so other tests do not add noise.
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.Native

  test "a handle survives garbage collection and its memory is freed once dropped" do
    h = Native.metrics_new(10)
    :erlang.garbage_collect()
    assert {:ok, false} = Native.metrics_emit_counter(h, [:gc], 1, %{}, 1)
    assert {1, 0, 0, 10} = Native.metrics_status(h)

    # The heap counter is process-wide: memory that other tests' stores and
    # metrics release meanwhile (freed once their persistent terms are
    # released) can hide the growth. A real leak fails every attempt.
    assert Enum.any?(1..3, fn _ -> grows_and_frees?() end)
  end

  defp grows_and_frees? do
    parent = self()
    before = Native.native_heap_bytes()

    {pid, ref} =
      spawn_monitor(fn ->
        filled = Native.metrics_new(100_000)
        pad = :binary.copy("x", 200)

        for i <- 1..5_000,
            do: Native.metrics_emit_counter(filled, [:gc, :"h5_gc_#{i}"], 1, %{pad: pad}, 1)

        send(parent, {:filled, Native.native_heap_bytes()})
      end)

    assert_receive {:filled, filled}, 10_000
    assert_receive {:DOWN, ^ref, :process, ^pid, :normal}
    grown = filled - before
    :erlang.garbage_collect()
    grown > 1_000_000 and before + grown - Native.native_heap_bytes() > 0.9 * grown
  end
end

defmodule ElixirScope.Foundation.NativeMetricsCounterNowTest do
  # metrics_emit_counter_now/4 (the TelemetryService hot path): the clock is
  # read in Rust, repeated increments come from a per-thread cache keyed by
  # the atoms; every change that must invalidate that cache is checked.
  use ExUnit.Case, async: true

  import Bitwise
  import ElixirScope.Foundation.TestSupport.Eventually

  alias ElixirScope.Foundation.Native

  defp entry(h, name) do
    {:ok, entries} = Native.metrics_snapshot(h)
    Enum.find(entries, fn {n, _, _, _, _} -> n == name end)
  end

  test "counts, sums and stamps with System.monotonic_time/0 units" do
    h = Native.metrics_new(10)
    before = System.monotonic_time()
    for v <- 1..50, do: :ok = Native.metrics_emit_counter_now(h, [:a, :b], v, %{m: v})
    later = System.monotonic_time()
    assert {[:a, :b], 50, ts, %{counter: 1275}, %{m: 1}} = entry(h, [:a, :b])
    assert before <= ts and ts <= later
    # Mixed with the explicit-timestamp NIF on the same entry.
    {:ok, false} = Native.metrics_emit_counter(h, [:a, :b], 5, %{}, later + 1)
    :ok = Native.metrics_emit_counter_now(h, [:a, :b], 0.5, %{})
    assert {_, 52, _, %{counter: 1280.5}, _} = entry(h, [:a, :b])
  end

  test "clear, cleanup, attach and detach reach names already cached" do
    h = Native.metrics_new(10)
    for _ <- 1..3, do: :ok = Native.metrics_emit_counter_now(h, [:c], 1, %{first: 1})
    assert Native.metrics_clear(h) == 1
    :ok = Native.metrics_emit_counter_now(h, [:c], 2, %{second: 2})
    assert {_, 1, _, %{counter: 2}, %{second: 2}} = entry(h, [:c])
    assert Native.metrics_cleanup(h, System.monotonic_time()) == 1
    :ok = Native.metrics_emit_counter_now(h, [:c], 3, %{})
    assert {_, 1, _, %{counter: 3}, _} = entry(h, [:c])
    :ok = Native.metrics_attach(h, [[:c]])
    assert :handler = Native.metrics_emit_counter_now(h, [:c], 1, %{})
    :ok = Native.metrics_detach(h, [[:c]])
    assert :ok = Native.metrics_emit_counter_now(h, [:c], 1, %{})
  end

  test "handles are independent; long names and full stores still work" do
    {h1, h2} = {Native.metrics_new(1), Native.metrics_new(10)}
    long = for i <- 1..40, do: :"seg#{i}"
    for _ <- 1..3, do: Native.metrics_emit_counter_now(h1, [:x], 1, %{})
    for _ <- 1..2, do: Native.metrics_emit_counter_now(h2, [:x], 1, %{})
    for _ <- 1..2, do: :ok = Native.metrics_emit_counter_now(h1, long, 1, %{})
    for _ <- 1..2, do: :ok = Native.metrics_emit_counter_now(h2, long, 1, %{})
    assert {_, 3, _, _, _} = entry(h1, [:x])
    assert {_, 2, _, _, _} = entry(h2, [:x])
    assert entry(h1, long) == nil
    assert {^long, 2, _, %{counter: 2}, _} = entry(h2, long)
    assert h1 |> Native.metrics_status() == {1, 2, 0, 1}
  end

  test "exact under concurrency from many processes" do
    h = Native.metrics_new(10)

    1..16
    |> Enum.map(fn _ ->
      Task.async(fn ->
        for _ <- 1..2_000, do: Native.metrics_emit_counter_now(h, [:hot], 1, %{})
      end)
    end)
    |> Enum.each(&Task.await(&1, 30_000))

    assert {_, 32_000, _, %{counter: 32_000}, _} = entry(h, [:hot])
  end

  # The cache is per scheduler thread: a process moved to another thread
  # misses until metrics_emit_counter_now/4 counts the name there.
  defp add_cached(h, name, value) do
    case Native.metrics_add_cached(h, name, value) do
      :miss -> {:miss, Native.metrics_emit_counter_now(h, name, value, %{})}
      hit -> hit
    end
  end

  test "metrics_add_cached/3 counts cached names; anything else is a :miss that does nothing" do
    h = Native.metrics_new(10)
    true = Native.metrics_own(h)
    :ok = Native.metrics_emit_counter_now(h, [:c], 1, %{})
    results = for _ <- 1..100, do: add_cached(h, [:c], 2)
    assert :ok in results
    assert Enum.all?(results, &(&1 in [:ok, {:miss, :ok}]))
    assert {_, 101, _, %{counter: 201}, _} = entry(h, [:c])

    for {handle, name, value} <- [
          {:nope, [:c], 1},
          {make_ref(), [:c], 1},
          {h, [:c], 1.5},
          {h, [:c], 1 <<< 70},
          {h, [:other], 1},
          {h, "c", 1},
          {h, [:c | :tail], 1},
          {h, [:c, "seg"], 1}
        ] do
      assert Native.metrics_add_cached(handle, name, value) == :miss
    end

    assert {_, 101, _, %{counter: 201}, _} = entry(h, [:c])
    :ok = Native.metrics_attach(h, [[:c]])
    assert Native.metrics_add_cached(h, [:c], 1) == :miss
    assert :handler = Native.metrics_emit_counter_now(h, [:c], 1, %{})
    assert add_cached(h, [:c], 1) in [:handler, {:miss, :handler}]
  end

  test "metrics_add_cached/3 serves a handle only while its owner lives" do
    h = Native.metrics_new(10)
    me = self()
    # Cached on this thread right before each call (the cache is per thread).
    cached_add = fn ->
      :ok = Native.metrics_emit_counter_now(h, [:o], 1, %{})
      Native.metrics_add_cached(h, [:o], 1)
    end

    for _ <- 1..20, do: assert(cached_add.() == :miss)

    {owner, ref} =
      spawn_monitor(fn ->
        send(me, {:owned, Native.metrics_own(h)})
        receive do: (:stop -> :ok)
      end)

    assert_receive {:owned, true}
    assert eventually(fn -> cached_add.() == :ok end)
    send(owner, :stop)
    assert_receive {:DOWN, ^ref, :process, ^owner, :normal}
    assert eventually(fn -> cached_add.() == :miss end)
    for _ <- 1..20, do: assert(cached_add.() == :miss)
  end

  test "timestamps of the cached path: never after the VM clock, at most 1 µs before it" do
    h = Native.metrics_new(10)
    true = Native.metrics_own(h)
    slack = System.convert_time_unit(1, :microsecond, :native)

    for _ <- 1..2_000 do
      before = System.monotonic_time()
      add_cached(h, [:t], 1)
      later = System.monotonic_time()
      {_, _, ts, _, _} = entry(h, [:t])
      assert before - slack <= ts and ts <= later
    end
  end

  test "ArgumentError (never :nif_panicked) on wrong argument types" do
    h = Native.metrics_new(10)
    # Cached first, so the bad calls below cannot be served from the cache.
    :ok = Native.metrics_emit_counter_now(h, [:ok], 1, %{})

    for {handle, name} <- [
          {:nope, [:ok]},
          {h, "ok"},
          {h, [:ok | :tail]},
          {h, [:ok, "seg"]},
          {h, [:ok, 1]},
          {h, [:ünï_ŝeg]}
        ] do
      assert_raise ArgumentError, fn -> Native.metrics_emit_counter_now(handle, name, 1, %{}) end
    end

    assert {_, 1, _, _, _} = entry(h, [:ok])
  end
end
