defmodule ElixirScope.Foundation.Types.ConfigTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Types.Config

  doctest Config

  # The defaults of the original `%Types.Config{}`.
  @defaults %{
    ai: %{
      provider: :mock,
      api_key: nil,
      model: "gpt-4",
      analysis: %{max_file_size: 1_000_000, timeout: 30_000, cache_ttl: 3600},
      planning: %{default_strategy: :balanced, performance_target: 0.01, sampling_rate: 1.0}
    },
    capture: %{
      ring_buffer: %{
        size: 1024,
        max_events: 1000,
        overflow_strategy: :drop_oldest,
        num_buffers: :schedulers
      },
      processing: %{batch_size: 100, flush_interval: 50, max_queue_size: 1000},
      vm_tracing: %{
        enable_spawn_trace: true,
        enable_exit_trace: true,
        enable_message_trace: false,
        trace_children: true
      }
    },
    storage: %{
      hot: %{max_events: 100_000, max_age_seconds: 3600, prune_interval: 60_000},
      warm: %{enable: false, path: "./elixir_scope_data", max_size_mb: 100, compression: :zstd},
      cold: %{enable: false}
    },
    interface: %{query_timeout: 10_000, max_results: 1000, enable_streaming: true},
    dev: %{debug_mode: false, verbose_logging: false, performance_monitoring: true}
  }

  describe "defaults" do
    test "new/0 is the default tree and equals %Config{}" do
      config = Config.new()
      assert config == %Config{}
      assert Map.from_struct(config) == @defaults
    end

    test "sections are plain atom-keyed maps" do
      for {_section, value} <- Map.from_struct(Config.new()) do
        assert is_map(value) and not is_struct(value)
        assert Enum.all?(Map.keys(value), &is_atom/1)
      end
    end
  end

  describe "new/1" do
    test "deep-merges map overrides" do
      config = Config.new(ai: %{planning: %{sampling_rate: 0.5}}, dev: %{debug_mode: true})
      assert config.ai.planning == %{@defaults.ai.planning | sampling_rate: 0.5}
      assert config.ai.provider == :mock
      assert config.dev == %{@defaults.dev | debug_mode: true}
    end

    test "nested unknown keys are kept" do
      assert Config.new(ai: %{extra: 1}).ai.extra == 1
    end

    test "a non-map value replaces the section" do
      assert Config.new(ai: :replaced).ai == :replaced
      assert Config.new(interface: [query_timeout: 1]).interface == [query_timeout: 1]
    end

    test "a map replaces a non-map leaf" do
      assert Config.new(ai: %{provider: %{name: :x}}).ai.provider == %{name: :x}
    end

    test "unknown top-level keys are added to the struct map" do
      config = Config.new(bogus: 1)
      assert Map.get(config, :bogus) == 1
      assert %Config{} = config
    end

    test "later overrides win" do
      assert Config.new(dev: %{debug_mode: true}, dev: %{debug_mode: false}).dev.debug_mode ==
               false
    end

    test "non-keyword input raises FunctionClauseError" do
      assert_raise FunctionClauseError, fn -> Config.new(%{ai: %{}}) end
      assert_raise FunctionClauseError, fn -> Config.new([:ai]) end
    end
  end

  describe "Access" do
    test "fetch/2 and bracket access" do
      config = Config.new()
      assert Config.fetch(config, :ai) == {:ok, @defaults.ai}
      assert Config.fetch(config, :missing) == :error
      assert config[:ai][:provider] == :mock
      assert config[:missing] == nil
      assert get_in(config, [:storage, :warm, :path]) == "./elixir_scope_data"
    end

    test "put_in/update_in/get_and_update_in on nested keys" do
      config = put_in(Config.new(), [:dev, :debug_mode], true)
      assert %Config{} = config
      assert config.dev.debug_mode == true

      config = update_in(config, [:interface, :max_results], &(&1 * 2))
      assert config.interface.max_results == 2000

      {old, config} = get_and_update_in(config, [:ai, :planning, :sampling_rate], &{&1, 0.25})
      assert old == 1.0
      assert config.ai.planning.sampling_rate == 0.25
    end

    test "put_in on an unknown top-level key is a no-op" do
      config = Config.new()
      assert put_in(config, [:bogus], 1) == config
      refute Map.has_key?(put_in(config, [:bogus], 1), :bogus)
    end

    test "put_in keeps unknown nested keys" do
      assert put_in(Config.new(), [:ai, :bogus], 1).ai.bogus == 1
    end

    test "get_and_update/3 returns the current value and rebuilds the struct" do
      {current, config} = Config.get_and_update(Config.new(), :dev, &{&1, %{debug_mode: true}})
      assert current == @defaults.dev
      assert config.dev == %{debug_mode: true}
      assert %Config{} = config
    end

    test "get_and_update/3 drops unknown top-level keys added by new/1" do
      {_, config} = Config.get_and_update(Config.new(bogus: 1), :dev, &{&1, &1})
      refute Map.has_key?(config, :bogus)
    end

    test "a :pop in get_and_update resets the key to its default" do
      changed = Config.new(dev: %{debug_mode: true})
      {popped, config} = Config.get_and_update(changed, :dev, fn _ -> :pop end)
      assert popped == changed.dev
      assert config.dev == @defaults.dev
    end

    test "pop/2 returns the value and resets the key to its default" do
      changed = Config.new(interface: %{max_results: 5})
      {value, config} = Config.pop(changed, :interface)
      assert value.max_results == 5
      assert config.interface == @defaults.interface
      assert Map.has_key?(config, :interface)

      {popped, config} = pop_in(changed, [:interface])
      assert popped.max_results == 5
      assert config.interface == @defaults.interface
    end

    test "pop_in on a nested key removes it from the section" do
      {value, config} = pop_in(Config.new(), [:ai, :model])
      assert value == "gpt-4"
      refute Map.has_key?(config.ai, :model)
    end

    test "pop/2 on an unknown key gives nil and an unchanged config" do
      assert Config.pop(Config.new(), :bogus) == {nil, Config.new()}
    end
  end

  describe "random input (seeded)" do
    test "new/1 with random keyword overrides" do
      :rand.seed(:exsss, {1, 2, 3})
      keys = [:ai, :capture, :storage, :interface, :dev, :bogus]

      for _ <- 1..500 do
        key = Enum.random(keys)
        value = ElixirScope.Foundation.TestSupport.RandomTerms.term(3)
        config = Config.new([{key, value}])
        default = Map.get(Config.new(), key)

        expected =
          if is_map(default) and is_map(value),
            do: ElixirScope.Foundation.Utils.deep_merge(default, value),
            else: value

        assert Map.get(config, key) == expected
      end
    end
  end
end
