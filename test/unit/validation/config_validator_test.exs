defmodule ElixirScope.Foundation.Validation.ConfigValidatorTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Types
  alias ElixirScope.Foundation.Types.Config
  alias ElixirScope.Foundation.Validation.ConfigValidator

  doctest ConfigValidator

  defp cfg(path, value), do: put_in(Config.new(), path, value)

  defp assert_error(result, type, code, severity, message) do
    assert {:error, %Types.Error{} = e} = result
    assert e.error_type == type
    assert e.code == code
    assert e.severity == severity
    assert e.message == message
    assert e.category == :config
    assert e.subcategory == :validation
    assert e.retry_strategy == nil
    assert e.recovery_actions == []
    e
  end

  describe "validate/1" do
    test "accepts the default config and extra keys" do
      assert ConfigValidator.validate(Config.new()) == :ok
      assert ConfigValidator.validate(Config.new(bogus: 1)) == :ok
      assert ConfigValidator.validate(cfg([:ai, :api_key], {:weird, self()})) == :ok
      assert ConfigValidator.validate(cfg([:capture, :ring_buffer, :num_buffers], -5)) == :ok
      assert ConfigValidator.validate(cfg([:ai, :model], 42)) == :ok
    end

    test "invalid provider -> 1002 with context" do
      e =
        cfg([:ai, :provider], :bogus)
        |> ConfigValidator.validate()
        |> assert_error(:invalid_config_value, 1002, :medium, "Invalid AI provider")

      assert e.context == %{
               provider: :bogus,
               valid_providers: [:mock, :openai, :anthropic, :gemini]
             }
    end

    test "every accepted provider passes" do
      for p <- [:mock, :openai, :anthropic, :gemini] do
        assert ConfigValidator.validate(cfg([:ai, :provider], p)) == :ok
      end
    end

    test "analysis, planning and its three rules" do
      cfg([:ai, :analysis, :timeout], 0)
      |> ConfigValidator.validate()
      |> assert_error(:validation_failed, 1001, :medium, "Invalid AI analysis configuration")

      cfg([:ai, :planning], %{sampling_rate: 1.0})
      |> ConfigValidator.validate()
      |> assert_error(:validation_failed, 1001, :medium, "Invalid AI planning configuration")

      cfg([:ai, :planning, :performance_target], -0.5)
      |> ConfigValidator.validate()
      |> assert_error(
        :constraint_violation,
        1003,
        :high,
        "Performance target must be a non-negative number"
      )

      cfg([:ai, :planning, :default_strategy], :invalid)
      |> ConfigValidator.validate()
      |> assert_error(:invalid_config_value, 1002, :medium, "Invalid planning strategy")
    end

    test "sampling_rate 1.5/2.0/5.0/-0.1 are range errors; 0.0, 1.0, 0, 1 pass" do
      for rate <- [1.5, 2.0, 5.0, -0.1, 2, "0.5", nil] do
        cfg([:ai, :planning, :sampling_rate], rate)
        |> ConfigValidator.validate()
        |> assert_error(:range_error, 1004, :high, "Sampling rate must be between 0 and 1")
      end

      for rate <- [0.0, 1.0, 0, 1, 0.5, -0.0] do
        assert ConfigValidator.validate(cfg([:ai, :planning, :sampling_rate], rate)) == :ok
      end
    end

    test "capture rules" do
      cfg([:capture, :ring_buffer, :size], -1)
      |> ConfigValidator.validate()
      |> assert_error(:validation_failed, 1001, :medium, "Invalid ring buffer configuration")

      cfg([:capture, :ring_buffer, :overflow_strategy], :invalid_strategy)
      |> ConfigValidator.validate()
      |> assert_error(:invalid_config_value, 1002, :medium, "Invalid overflow strategy")

      assert ConfigValidator.validate(cfg([:capture, :ring_buffer, :overflow_strategy], :block)) ==
               :ok

      cfg([:capture, :ring_buffer, :overflow_strategy], :error)
      |> ConfigValidator.validate()
      |> assert_error(:invalid_config_value, 1002, :medium, "Invalid overflow strategy")

      cfg([:capture, :processing, :batch_size], 1.0)
      |> ConfigValidator.validate()
      |> assert_error(:validation_failed, 1001, :medium, "Invalid processing configuration")

      cfg([:capture, :vm_tracing, :trace_children], nil)
      |> ConfigValidator.validate()
      |> assert_error(:validation_failed, 1001, :medium, "Invalid VM tracing configuration")
    end

    test "storage rules" do
      cfg([:storage, :hot, :prune_interval], 0)
      |> ConfigValidator.validate()
      |> assert_error(:validation_failed, 1001, :medium, "Invalid hot storage configuration")

      # disabled warm storage: nothing else is checked
      config = cfg([:storage, :warm], %{enable: false, path: 1, compression: :lz4})
      assert ConfigValidator.validate(config) == :ok

      enabled = cfg([:storage, :warm, :enable], true)
      assert ConfigValidator.validate(enabled) == :ok

      put_in(enabled, [:storage, :warm, :path], :not_binary)
      |> ConfigValidator.validate()
      |> assert_error(:validation_failed, 1001, :medium, "Invalid warm storage configuration")

      put_in(enabled, [:storage, :warm, :compression], :lz4)
      |> ConfigValidator.validate()
      |> assert_error(:invalid_config_value, 1002, :medium, "Invalid compression type")

      cfg([:storage, :cold, :enable], true)
      |> ConfigValidator.validate()
      |> assert_error(:validation_failed, 1001, :medium, "Invalid cold storage configuration")
    end

    test "interface and dev rules; query_timeout 1 and 300_000 pass" do
      for t <- [1, 300_000] do
        assert ConfigValidator.validate(cfg([:interface, :query_timeout], t)) == :ok
      end

      cfg([:interface, :enable_streaming], "yes")
      |> ConfigValidator.validate()
      |> assert_error(:validation_failed, 1001, :medium, "Invalid interface configuration")

      cfg([:dev, :debug_mode], 1)
      |> ConfigValidator.validate()
      |> assert_error(:validation_failed, 1001, :medium, "Invalid development configuration")
    end

    test "sections are checked in order; first failure wins" do
      config =
        Config.new()
        |> put_in([:dev, :debug_mode], 1)
        |> put_in([:storage, :cold, :enable], true)
        |> put_in([:capture, :ring_buffer, :size], 0)

      assert {:error, %{message: "Invalid ring buffer configuration"}} =
               ConfigValidator.validate(config)

      config = put_in(config, [:ai, :provider], :nope)
      assert {:error, %{message: "Invalid AI provider"}} = ConfigValidator.validate(config)
    end

    test "raises like the original for missing required keys" do
      c = Config.new()

      assert_raise FunctionClauseError, fn ->
        ConfigValidator.validate(%{c | ai: Map.delete(c.ai, :provider)})
      end

      assert_raise KeyError, fn ->
        ConfigValidator.validate(%{c | ai: Map.delete(c.ai, :analysis)})
      end

      assert_raise FunctionClauseError, fn ->
        ConfigValidator.validate(%{c | capture: Map.delete(c.capture, :vm_tracing)})
      end

      assert_raise FunctionClauseError, fn ->
        ConfigValidator.validate(%{c | storage: :none})
      end

      assert_raise KeyError, fn -> ConfigValidator.validate(Map.delete(c, :dev)) end
      assert_raise FunctionClauseError, fn -> ConfigValidator.validate(%{ai: %{}}) end
    end
  end

  describe "section validators" do
    test "each section validates its own map" do
      c = Config.new()
      assert ConfigValidator.validate_ai_config(c.ai) == :ok
      assert ConfigValidator.validate_capture_config(c.capture) == :ok
      assert ConfigValidator.validate_storage_config(c.storage) == :ok
      assert ConfigValidator.validate_interface_config(c.interface) == :ok
      assert ConfigValidator.validate_dev_config(c.dev) == :ok
    end

    test "each section reports its errors" do
      c = Config.new()

      assert {:error, %{error_type: :invalid_config_value, context: %{provider: :x}}} =
               ConfigValidator.validate_ai_config(%{c.ai | provider: :x})

      assert {:error, %{code: 1001}} =
               ConfigValidator.validate_capture_config(%{c.capture | processing: %{}})

      assert {:error, %{code: 1001}} =
               ConfigValidator.validate_storage_config(%{c.storage | cold: %{enable: nil}})

      assert {:error, %{message: "Invalid interface configuration"}} =
               ConfigValidator.validate_interface_config(%{})

      assert {:error, %{message: "Invalid development configuration"}} =
               ConfigValidator.validate_dev_config(:not_a_map)
    end

    test "function heads raise FunctionClauseError; missing analysis raises KeyError" do
      assert_raise FunctionClauseError, fn -> ConfigValidator.validate_ai_config(%{}) end
      assert_raise FunctionClauseError, fn -> ConfigValidator.validate_capture_config(nil) end

      assert_raise FunctionClauseError, fn ->
        ConfigValidator.validate_storage_config(%{hot: 1})
      end

      assert_raise KeyError, fn ->
        ConfigValidator.validate_ai_config(%{provider: :mock, planning: %{}})
      end
    end
  end
end
