defmodule ElixirScope.Foundation.Logic.ConfigLogicTest do
  # build_config/1 reads the :elixir_scope app env; one test changes it.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  alias ElixirScope.Foundation.Logic.ConfigLogic
  alias ElixirScope.Foundation.Types
  alias ElixirScope.Foundation.Types.Config

  doctest ConfigLogic

  @paths [
    [:ai, :planning, :sampling_rate],
    [:ai, :planning, :performance_target],
    [:capture, :processing, :batch_size],
    [:capture, :processing, :flush_interval],
    [:interface, :query_timeout],
    [:interface, :max_results],
    [:dev, :debug_mode],
    [:dev, :verbose_logging],
    [:dev, :performance_monitoring]
  ]

  test "updatable_paths/0 and updatable_path?/1" do
    assert ConfigLogic.updatable_paths() == @paths
    for p <- @paths, do: assert(ConfigLogic.updatable_path?(p))
    refute ConfigLogic.updatable_path?([:ai, :planning])
    refute ConfigLogic.updatable_path?([:ai, :provider])
    refute ConfigLogic.updatable_path?([])
    assert_raise FunctionClauseError, fn -> ConfigLogic.updatable_path?(:dev) end
  end

  describe "update_config/3" do
    test "updates an allowed path" do
      assert {:ok, c} = ConfigLogic.update_config(Config.new(), [:dev, :debug_mode], true)
      assert c.dev.debug_mode == true

      assert {:ok, %{ai: %{planning: %{sampling_rate: +0.0}}}} =
               ConfigLogic.update_config(Config.new(), [:ai, :planning, :sampling_rate], 0.0)
    end

    test "forbidden path -> config_update_forbidden with code nil" do
      assert {:error, %Types.Error{} = e} =
               ConfigLogic.update_config(Config.new(), [:ai, :provider], :openai)

      assert e.code == nil
      assert e.error_type == :config_update_forbidden
      assert e.message == "Configuration path [:ai, :provider] cannot be updated at runtime"
      assert e.context == %{path: [:ai, :provider], allowed_paths: @paths}
      assert {e.category, e.subcategory, e.severity} == {:config, :runtime, :medium}
    end

    test "invalid value -> validator error; config untouched" do
      for rate <- [1.5, 2.0, 5.0] do
        assert {:error, %Types.Error{error_type: :range_error, code: 1004}} =
                 ConfigLogic.update_config(Config.new(), [:ai, :planning, :sampling_rate], rate)
      end

      assert {:error, %{error_type: :validation_failed, code: 1001}} =
               ConfigLogic.update_config(Config.new(), [:interface, :max_results], 0)
    end
  end

  describe "get_config_value/2" do
    test "walks maps and the struct" do
      c = Config.new()
      assert ConfigLogic.get_config_value(c, []) == {:ok, c}
      assert ConfigLogic.get_config_value(c, [:ai, :provider]) == {:ok, :mock}
      assert ConfigLogic.get_config_value(c, [:ai, :api_key]) == {:ok, nil}
      assert ConfigLogic.get_config_value(c, [:dev]) == {:ok, c.dev}
    end

    test "missing key or non-map midway -> config_path_not_found" do
      for path <- [[:nope], [:ai, :provider, :deeper], [:ai, :missing]] do
        assert {:error, %Types.Error{} = e} = ConfigLogic.get_config_value(Config.new(), path)
        assert e.error_type == :config_path_not_found
        assert e.message == "Configuration path not found: #{inspect(path)}"
        assert e.context == %{path: path}
        assert {e.code, e.category, e.subcategory, e.severity} == {nil, :config, :access, :medium}
      end
    end

    test "an exception while walking -> config_path_invalid" do
      path = [:ai | :improper]
      assert {:error, %Types.Error{} = e} = ConfigLogic.get_config_value(Config.new(), path)
      assert e.error_type == :config_path_invalid
      assert "Invalid configuration path: " <> _ = e.message
      assert %{path: ^path, error: %FunctionClauseError{}} = e.context
      assert e.code == nil
    end

    test "non-list path -> invalid_path (validation subcategory) and a warning" do
      log =
        capture_log(fn ->
          assert {:error, %Types.Error{} = e} = ConfigLogic.get_config_value(Config.new(), :ai)
          assert e.error_type == :invalid_path
          assert e.message == "Invalid path type: :ai"

          assert {e.code, e.category, e.subcategory, e.severity} ==
                   {nil, :config, :validation, :medium}
        end)

      assert log =~ "Invalid configuration path type"
    end
  end

  describe "merging" do
    test "merge_env_config/2 deep-merges keyword lists into sections, ignores other keys" do
      env = [
        ai: [planning: [sampling_rate: 0.5], provider: :openai],
        dev: %{debug_mode: true},
        test_mode: true,
        interface: :not_a_map
      ]

      c = ConfigLogic.merge_env_config(Config.new(), env)

      assert c.ai.planning == %{
               default_strategy: :balanced,
               performance_target: 0.01,
               sampling_rate: 0.5
             }

      assert c.ai.provider == :openai
      assert c.ai.model == "gpt-4"
      assert c.dev.debug_mode == true
      assert c.dev.verbose_logging == false
      assert c.interface == :not_a_map
      refute Map.has_key?(c, :test_mode)
    end

    test "merge_opts_config/2 replaces wholesale and adds unknown keys" do
      c = ConfigLogic.merge_opts_config(Config.new(), dev: %{debug_mode: true}, namespace: :x)
      assert c.dev == %{debug_mode: true}
      assert c.namespace == :x
    end

    test "build_config/1 uses app env then opts, then validates" do
      assert {:ok, c} = ConfigLogic.build_config()
      # config/config.exs test env
      assert c.ai.planning.default_strategy == :fast
      assert c.capture.processing.batch_size == 10
      assert c.dev.performance_monitoring == false

      assert {:ok, %{interface: %{query_timeout: 1}}} =
               ConfigLogic.build_config(
                 interface: %{query_timeout: 1, max_results: 5, enable_streaming: false}
               )

      assert {:error, %Types.Error{error_type: :validation_failed}} =
               ConfigLogic.build_config(dev: %{debug_mode: true})
    end

    test "build_config/1 rejects bad app env" do
      old = Application.get_env(:elixir_scope_foundation, :ai)

      try do
        Application.put_env(:elixir_scope_foundation, :ai, provider: :bogus)
        assert {:error, %{error_type: :invalid_config_value}} = ConfigLogic.build_config()
      after
        Application.put_env(:elixir_scope_foundation, :ai, old)
      end
    end

    test "reset_config/0 ignores app env" do
      assert ConfigLogic.reset_config() == Config.new()
    end
  end

  describe "diff_configs/2" do
    test "identical -> %{}" do
      assert ConfigLogic.diff_configs(Config.new(), Config.new()) == %{}
    end

    test "nested leaves carry old, new and the full path" do
      new =
        Config.new()
        |> put_in([:dev, :debug_mode], true)
        |> put_in([:ai, :planning, :sampling_rate], 0.5)

      assert ConfigLogic.diff_configs(Config.new(), new) == %{
               dev: %{debug_mode: %{old: false, new: true, path: [:dev, :debug_mode]}},
               ai: %{
                 planning: %{
                   sampling_rate: %{old: 1.0, new: 0.5, path: [:ai, :planning, :sampling_rate]}
                 }
               }
             }
    end

    test "added, removed and map-vs-scalar keys" do
      old = %{a: %{b: 1}, gone: 1, same: %{x: [1]}}
      new = %{a: 5, added: :y, same: %{x: [1]}}

      assert ConfigLogic.diff_configs(old, new) == %{
               a: %{old: %{b: 1}, new: 5, path: [:a]},
               gone: %{old: 1, new: nil, path: [:gone]},
               added: %{old: nil, new: :y, path: [:added]}
             }
    end
  end
end
