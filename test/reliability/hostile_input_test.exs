defmodule ElixirScope.Foundation.Reliability.HostileInputTest do
  @moduledoc """
  Hostile input: every public function of every module in `lib/` gets wrong
  types, nil, deeply nested terms (100 000 levels), improper lists, atoms it
  never saw, non-UTF-8 binaries, negative/huge integers, -0.0, 1.0e308 and
  pids of dead processes; a few entry points get 100 MB binaries.

  Each call runs in its own process with a deadline. Accepted outcomes: any
  return value, or one of the exceptions the contract documents for wrong
  argument types (`@accepted_exceptions`). Defects: `:nif_panicked`, any
  other exception or exit, a call that hangs, a service that dies or
  restarts, the atom table growing with fresh inputs, stored data changed.

  The default run sweeps each function with every pool value in every
  position plus a few random combinations (seeded); `mix test --only chaos`
  runs the long version and prints the counts.
  """
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.{Config, Events, ProcessRegistry, ServiceRegistry, Telemetry}
  alias ElixirScope.Foundation.Services.{ConfigServer, EventStore, TelemetryService}
  alias ElixirScope.Foundation.Types.{Error, Event}
  alias ElixirScope.Foundation.TestSupport.Eventually

  # Exceptions the original raised (and the docs list) for arguments of the
  # wrong type. Anything else is reported.
  @accepted_exceptions [
    FunctionClauseError,
    ArgumentError,
    KeyError,
    BadMapError,
    ArithmeticError,
    Protocol.UndefinedError,
    BadFunctionError,
    BadArityError,
    BadStructError
  ]

  # Exceptions documented for one function in particular.
  @documented_exceptions %{
    {ElixirScope.Foundation.Events, :debug_new_event} => RuntimeError
  }

  # Not swept, with the reason:
  #   * GenServer/Application callbacks are not API (the VM calls them).
  #   * stop/shutdown/start_link/start_*: lifecycle by design (they start or
  #     stop the services this test watches).
  #   * reset/reset_metrics/delete_table: wipe state by design (reset_state
  #     IS swept, with test_mode off, and must change nothing).
  #   * wait_for_service: waits `timeout` ms by design (checked separately).
  #   * load_nif: reloads the library.
  @skipped_functions ~w(init handle_call handle_cast handle_info terminate code_change
                        start stop shutdown start_link start_service start_isolated_services
                        reset reset_metrics delete_table cleanup_fallback_system
                        wait_for_service load_nif)a
  @skipped_modules [
    Mix.Tasks.Compile.FoundationNif,
    Mix.Tasks.ElixirScopeFoundation.Nif.Package,
    # build helpers: they run cargo and write files by design
    ElixirScope.Foundation.NifBuild.Archive,
    ElixirScope.Foundation.NifBuild.Cargo,
    ElixirScope.Foundation.NifBuild.Target,
    ElixirScope.Foundation.Test.ValidationReference
  ]

  @call_deadline_ms 5_000
  @depth 100_000

  setup_all do
    {:ok, _} = Application.ensure_all_started(:elixir_scope_foundation)
    :ok
  end

  setup do
    level = Logger.level()
    test_mode = Application.get_env(:elixir_scope_foundation, :test_mode)
    Logger.configure(level: :none)

    on_exit(fn ->
      Logger.configure(level: level)
      Application.put_env(:elixir_scope_foundation, :test_mode, test_mode)
    end)

    :ok
  end

  describe "every public function" do
    @tag timeout: 300_000
    test "survives the hostile pool (short sweep)" do
      run_sweep(random_combos: 1, extra_random: 0, print?: true)
    end

    @tag :chaos
    @tag timeout: :infinity
    test "survives the hostile pool (long sweep, printed counts)" do
      run_sweep(random_combos: 8, extra_random: 30, print?: true)
    end
  end

  test "100 MB binaries: errors, not crashes; services stay up" do
    baseline = baseline!()
    huge = :binary.copy(<<0xFF, 0xFE, ?a, 0>>, 25_000_000)
    assert byte_size(huge) == 100_000_000

    {:error, %Error{error_type: :deserialization_failed}} = Events.deserialize(huge)
    {:error, %Error{error_type: :data_too_large}} = Events.new_event(:hostile, huge)
    {:error, %Error{}} = Config.update([:dev, :debug_mode], huge)
    {:error, %Error{}} = Config.update([huge], huge)
    {:ok, []} = EventStore.get_by_correlation(huge)
    assert %{truncated: true} = ElixirScope.Foundation.Utils.truncate_if_large(huge)
    assert :ok = Telemetry.emit_counter([:hostile, :huge], %{payload: binary_part(huge, 0, 1000)})
    assert is_binary(Events.GracefulDegradation.serialize_safe(huge))

    event = %Event{Event.new(:hostile) | data: huge}
    assert {:error, %Error{error_type: :data_too_large}} = EventStore.store(event)
    assert {:error, %Error{}} = EventStore.store_batch([Event.new(:ok), event])

    check_baseline!(baseline)
  end

  test "Events.deserialize never creates atoms from untrusted binaries" do
    # Warm-up: the first failure loads code (exception modules and so on).
    Events.deserialize(event_binary_naming(fresh_atom_name(0)))

    for n <- 1..200 do
      name = fresh_atom_name(n)
      before = :erlang.system_info(:atom_count)

      assert {:error, %Error{error_type: :deserialization_failed}} =
               Events.deserialize(event_binary_naming(name))

      assert {:error, %Error{}} = Events.deserialize(<<131, 119, byte_size(name), name::binary>>)
      assert :erlang.system_info(:atom_count) == before
    end
  end

  test "reset_state outside test mode and cleanup of a production namespace change nothing" do
    baseline = baseline!()
    Application.put_env(:elixir_scope_foundation, :test_mode, false)

    for {mod, code} <- [{ConfigServer, 5002}, {EventStore, 3002}, {TelemetryService, 7002}] do
      assert {:error, %Error{code: ^code, error_type: :operation_forbidden}} = mod.reset_state()
    end

    for ns <- [:production, nil, {:test, :production}, :erlang.make_ref()] do
      assert :ok = ServiceRegistry.cleanup_test_namespace(ns)
      assert :ok = ProcessRegistry.cleanup_test_namespace(ns)
    end

    check_baseline!(baseline)
  end

  test "extreme numbers in metrics keep get_metrics working" do
    name = [:hostile, :extreme]

    for v <- [1.0e308, 1.0e308, -1.0e308, -1.0e308, 2 ** 1000, -(2 ** 1000), -0.0] do
      assert :ok = Telemetry.emit_counter(name, %{})
      assert :ok = TelemetryService.emit_counter(name, v, %{})
      assert :ok = Telemetry.emit_gauge(name, v, %{})
      assert :ok = Telemetry.execute(name ++ [:avg], %{duration: v, other: v}, %{})
    end

    assert {:ok, metrics} = Telemetry.get_metrics()
    assert %{hostile: %{extreme: %{count: _}}} = metrics
    assert {:ok, _} = TelemetryService.status()
  end

  test "wait_for_service with hostile timeouts returns instead of hanging" do
    for timeout <- [0, -1, -(2 ** 70)] do
      assert {:error, :timeout} =
               ServiceRegistry.wait_for_service(:production, fresh_atom(), timeout)
    end
  end

  ## the sweep

  defp run_sweep(opts) do
    :rand.seed(:exsss, {1, 2, 3})
    baseline = baseline!()
    Application.put_env(:elixir_scope_foundation, :test_mode, false)
    pool = pool() ++ random_values(opts[:extra_random])
    targets = targets()

    {counts, defects} =
      Enum.reduce(targets, {%{}, []}, fn {mod, fun, arity}, acc ->
        inputs = inputs(pool, arity, opts[:random_combos])
        Enum.reduce(inputs, acc, &try_input(mod, fun, &1, baseline, &2))
      end)

    Application.put_env(:elixir_scope_foundation, :test_mode, true)
    if opts[:print?], do: print_counts(targets, counts, defects)
    assert defects == [], format_defects(defects)
    check_baseline!(baseline)
  end

  defp try_input(mod, fun, args, baseline, {counts, defects}) do
    outcome = call(mod, fun, realize(args))
    counts = Map.update(counts, outcome_kind(outcome), 1, &(&1 + 1))

    case defect(mod, fun, args, outcome, baseline) do
      nil -> {counts, defects}
      d -> {counts, [d | defects]}
    end
  end

  defp defect(mod, fun, args, outcome, baseline) do
    problem =
      case outcome do
        {:returned, {:error, {kind, detail}}}
        when mod != ElixirScope.Foundation.Native and is_atom(kind) and is_binary(detail) ->
          "leaked a raw native error {#{inspect(kind)}, #{inspect(detail)}}"

        {:returned, _} ->
          nil

        {:raised, %ErlangError{original: :nif_panicked}} ->
          "nif_panicked"

        {:raised, %struct{}} when struct in @accepted_exceptions ->
          nil

        {:raised, %struct{}} ->
          documented(mod, fun, struct, outcome)

        {:exited, reason} ->
          "exited: #{short(reason)}"

        {:thrown, value} ->
          "threw #{short(value)}"

        :hung ->
          "no answer within #{@call_deadline_ms} ms"
      end

    problem = problem || services_problem(baseline) || atom_problem(mod, fun, args)
    problem && {mod, fun, length(args), problem, short(args)}
  end

  defp documented(mod, fun, struct, {:raised, e}) do
    if Map.get(@documented_exceptions, {mod, fun}) != struct,
      do: "raised #{inspect(struct)}: #{safe_message(e)}"
  end

  # A call that grows the atom table is run again with fresh values in place
  # of the fresh markers; growing again means atoms made from runtime data
  # (the first growth can be code loading).
  defp atom_problem(mod, fun, args) do
    if Enum.any?(args, &match?({:fresh, _}, &1)) do
      before = :erlang.system_info(:atom_count)
      call(mod, fun, realize(args))
      grown = :erlang.system_info(:atom_count) - before
      if grown > 0, do: "created #{grown} atom(s) from runtime data"
    end
  end

  defp call(mod, fun, args) do
    {pid, ref} =
      spawn_monitor(fn ->
        result =
          try do
            {:returned, apply(mod, fun, args)}
          rescue
            e -> {:raised, e}
          catch
            :exit, reason -> {:exited, reason}
            :throw, value -> {:thrown, value}
          end

        exit({:shutdown, {:outcome, result}})
      end)

    receive do
      {:DOWN, ^ref, :process, ^pid, {:shutdown, {:outcome, result}}} -> result
      {:DOWN, ^ref, :process, ^pid, reason} -> {:exited, reason}
    after
      @call_deadline_ms ->
        Process.exit(pid, :kill)
        receive(do: ({:DOWN, ^ref, :process, ^pid, _} -> :ok))
        :hung
    end
  end

  defp outcome_kind({:returned, _}), do: :returned
  defp outcome_kind({:raised, %ErlangError{original: :nif_panicked}}), do: :nif_panicked
  defp outcome_kind({:raised, %struct{}}), do: struct
  defp outcome_kind({kind, _}), do: kind
  defp outcome_kind(kind), do: kind

  ## targets and inputs

  defp targets do
    {:ok, modules} = :application.get_key(:elixir_scope_foundation, :modules)

    for mod <- Enum.sort(modules),
        mod not in @skipped_modules,
        not test_support?(mod),
        {fun, arity} <- mod.__info__(:functions),
        arity > 0,
        fun not in @skipped_functions,
        not String.starts_with?(Atom.to_string(fun), "__") do
      {mod, fun, arity}
    end
  end

  # Modules compiled from test/support (elixirc_paths in the test env) are
  # not part of the library.
  defp test_support?(mod) do
    source = mod.module_info(:compile) |> Keyword.get(:source, []) |> to_string()
    String.contains?(source, "/test/")
  end

  # Every pool value in every position (others nil), every value in all
  # positions at once, then `combos` random combinations.
  defp inputs(pool, arity, combos) do
    single =
      for pos <- 0..(arity - 1), v <- pool, arity > 1 or pos == 0 do
        List.replace_at(List.duplicate(nil, arity), pos, v)
      end

    diagonal = if arity > 1, do: Enum.map(pool, &List.duplicate(&1, arity)), else: []
    random = for _ <- 1..(combos * length(pool)), do: for(_ <- 1..arity, do: Enum.random(pool))
    single ++ diagonal ++ random
  end

  defp realize(args), do: Enum.map(args, &realize_one/1)

  defp realize_one({:fresh, kind}) do
    n = System.unique_integer([:positive])
    name = fresh_atom_name(n)

    case kind do
      :binary -> name
      :map_key -> %{name => 1, "event_type" => name}
      :keyword_like -> [{name, 1}]
      :event_binary -> event_binary_naming(name)
      :path -> [name, name]
    end
  end

  defp realize_one(value), do: value

  @doc false
  def pool do
    dead = spawn(fn -> :ok end)
    ref = Process.monitor(dead)
    receive(do: ({:DOWN, ^ref, _, _, _} -> :ok))

    scalars() ++
      [
        fresh_atom(),
        dead,
        make_ref(),
        fn -> :ok end,
        fn _ -> {:error, :hostile} end,
        deep_list(@depth),
        deep_map(@depth),
        deep_tuple(@depth),
        Enum.to_list(1..100_000),
        Map.new(1..10_000, &{&1, &1}),
        :binary.copy(<<0xC3>>, 1_000_000),
        %Event{Event.empty() | event_id: -1, event_type: "x", data: deep_list(@depth)},
        %Event{Event.new(:hostile) | event_id: 2 ** 70, timestamp: 1.0e308, pid: dead},
        %Event{Event.new(:hostile) | correlation_id: <<0xFF>>, parent_id: -0.0, node: "n"},
        %ElixirScope.Foundation.Types.Config{ai: :bogus, dev: [1 | 2]},
        %Error{code: :bad, error_type: "x", message: 1, severity: nil},
        %ElixirScope.Foundation.Error{
          code: nil,
          error_type: nil,
          message: nil,
          severity: nil,
          context: nil
        },
        # well-formed values, so hostile values also reach the paths behind
        # the first checks (a metric name, a config path, a valid event)
        [:hostile, :metric],
        [:dev, :debug_mode],
        Event.new(:hostile),
        [namespace: make_ref()],
        [namespace: {:test, :not_a_ref}],
        [namespace: dead, timeout: -1],
        {:test, make_ref()},
        {:fresh, :binary},
        {:fresh, :map_key},
        {:fresh, :keyword_like},
        {:fresh, :event_binary},
        {:fresh, :path}
      ]
  end

  defp scalars do
    [
      nil,
      true,
      0,
      -1,
      -0.0,
      1.0e308,
      -1.0e308,
      2 ** 31,
      2 ** 40,
      2 ** 63 - 1,
      2 ** 64,
      -(2 ** 64),
      2 ** 1000,
      "",
      <<0xFF, 0xFE, 0>>,
      <<0xC3>>,
      <<1::3>>,
      [],
      [1 | 2],
      [:a | :b],
      [[1 | 2] | "x"],
      %{},
      %{<<0xFF>> => [1 | 2], {1} => -0.0},
      {},
      {:ok},
      {:error, :hostile}
    ]
  end

  defp random_values(0), do: []
  defp random_values(n), do: for(_ <- 1..n, do: random_term(4))

  defp random_term(0), do: Enum.random(scalars())

  defp random_term(d) do
    case :rand.uniform(6) do
      1 -> for _ <- 1..:rand.uniform(4), do: random_term(d - 1)
      2 -> Map.new(1..:rand.uniform(4), fn _ -> {random_term(d - 1), random_term(d - 1)} end)
      3 -> List.to_tuple(for _ <- 1..:rand.uniform(3), do: random_term(d - 1))
      4 -> [random_term(d - 1) | random_term(d - 1)]
      5 -> :crypto.strong_rand_bytes(:rand.uniform(64))
      6 -> Enum.random(scalars())
    end
  end

  defp deep_list(n), do: Enum.reduce(1..n, [], fn _, acc -> [acc] end)
  defp deep_map(n), do: Enum.reduce(1..n, %{}, fn _, acc -> %{a: acc} end)
  defp deep_tuple(n), do: Enum.reduce(1..n, {}, fn _, acc -> {acc} end)

  defp fresh_atom do
    name = "hostile_seen_only_by_this_test_#{System.unique_integer([:positive])}"
    # Made once per test run on purpose: the library must not know it.
    String.to_atom(name)
  end

  defp fresh_atom_name(n),
    do: "hf_" <> String.pad_leading(Integer.to_string(n), 17, "0")

  # An external-term-format %Event{} whose event_type names `name` (20 bytes),
  # an atom that does not exist.
  defp event_binary_naming(name) do
    placeholder = "zzzzzzzzzzzzzzzzzzzz"
    20 = byte_size(name)
    {:ok, event} = Events.new_event(:zzzzzzzzzzzzzzzzzzzz, %{})
    :erlang.term_to_binary(event) |> :binary.replace(placeholder, name, [:global])
  end

  ## baseline: services, stored data

  defp baseline! do
    pids =
      for s <- [:config_server, :event_store, :telemetry_service], into: %{} do
        {:ok, pid} = ServiceRegistry.lookup(:production, s)
        {s, pid}
      end

    # Timestamp i64 max: prune_before/1 is strict, so even a hostile
    # prune_before(2 ** 1000) (clamped) keeps these events.
    events =
      for i <- 1..5 do
        {:ok, e} =
          Events.new_event(:hostile_baseline, %{i: i, bin: <<0xFF, i>>},
            timestamp: 2 ** 63 - 1,
            correlation_id: "hostile-baseline"
          )

        {:ok, _} = Events.store(e)
        e
      end

    {:ok, current} = Config.get([:dev, :verbose_logging])
    :ok = Config.update([:dev, :verbose_logging], not current)
    {:ok, expected} = Config.get([:dev, :verbose_logging])

    %{
      pids: pids,
      events: events,
      config: {[:dev, :verbose_logging], expected},
      threads: os_threads()
    }
  end

  # OS threads of the VM (Linux): NIF resources that start threads (the
  # store's async worker) must stop them when the resource is freed.
  defp os_threads do
    case File.ls("/proc/#{System.pid()}/task") do
      {:ok, tasks} -> length(tasks)
      {:error, _} -> 0
    end
  end

  # The thread count once it is at most `limit`, or after 1 s.
  defp wait_threads(limit) do
    Eventually.eventually(
      fn ->
        n = os_threads()
        if n <= limit, do: n
      end,
      1_000
    ) || os_threads()
  end

  defp services_problem(%{pids: pids}) do
    dead = for {s, pid} <- pids, not Process.alive?(pid), do: s
    if dead != [], do: "service(s) died: #{inspect(dead)}"
  end

  defp check_baseline!(%{pids: pids, events: events, config: {path, value}} = baseline) do
    :erlang.garbage_collect()
    limit = baseline.threads + 4

    assert wait_threads(limit) <= limit,
           "OS threads leaked: #{baseline.threads} -> #{os_threads()}"

    for {s, pid} <- pids do
      assert {:ok, ^pid} = ServiceRegistry.lookup(:production, s), "#{s} restarted or gone"
    end

    assert {:ok, %{status: :running}} = ConfigServer.status()
    assert {:ok, %{status: :running}} = EventStore.status()
    assert {:ok, %{status: :running}} = TelemetryService.status()

    for s <- [:config_server, :event_store, :telemetry_service] do
      assert {:ok, _} = ServiceRegistry.health_check(:production, s)
    end

    assert {:ok, ^value} = Config.get(path)

    for e <- events do
      assert {:ok, ^e} = Events.get(e.event_id)
    end

    assert {:ok, _} = Telemetry.get_metrics()

    bad = invalid_namespaces()
    assert bad == [], "state under invalid namespaces: #{inspect(bad, limit: 5)}"
  end

  # Services registered under a namespace that is neither `:production` nor
  # `{:test, reference}`: a hostile `namespace:` option must start nothing
  # (a service started under any term would publish its state there for
  # good). Published state alone is not checked: the sweep also calls the
  # hidden modules' internals (`Publisher.publish/2`...) with hostile terms.
  defp invalid_namespaces do
    ProcessRegistry
    |> Registry.select([{{{:"$1", :_}, :_, :_}, [], [:"$1"]}])
    |> Enum.reject(&ProcessRegistry.namespace?/1)
  end

  ## reporting

  defp print_counts(targets, counts, defects) do
    total = counts |> Map.values() |> Enum.sum()
    IO.puts("\nhostile input: #{length(targets)} functions, #{total} inputs tried")

    for {kind, n} <- Enum.sort_by(counts, fn {_, n} -> -n end) do
      IO.puts("  #{String.pad_trailing(inspect(kind), 40)} #{n}")
    end

    IO.puts("  defects: #{length(defects)}")
  end

  defp format_defects(defects) do
    defects
    |> Enum.reverse()
    |> Enum.uniq_by(fn {m, f, a, p, _} -> {m, f, a, p} end)
    |> Enum.map_join("\n", fn {m, f, a, problem, args} ->
      "#{inspect(m)}.#{f}/#{a}: #{problem}\n    args: #{args}"
    end)
  end

  defp safe_message(e) do
    e |> Exception.message() |> String.slice(0, 200)
  rescue
    _ -> "<no message>"
  end

  defp short(term), do: inspect(term, limit: 6, printable_limit: 60) |> String.slice(0, 300)
end
