defmodule ElixirScope.Foundation.ConfigTest do
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.{Config, Error}
  alias ElixirScope.Foundation.Services.ConfigServer
  alias ElixirScope.Foundation.Types

  setup do
    :ok = ConfigServer.reset_state()
    on_exit(fn -> ConfigServer.reset_state() end)
    :ok
  end

  test "get/0 and get/1" do
    assert {:ok, %Types.Config{}} = Config.get()
    assert Config.get([:ai, :provider]) == {:ok, :mock}
    assert Config.get([:dev, :debug_mode]) == {:ok, false}
    assert {:error, %Types.Error{error_type: :config_path_not_found}} = Config.get([:nope])
  end

  test "get_with_default/2" do
    assert Config.get_with_default([:ai, :provider], :other) == :mock
    assert Config.get_with_default([:no, :such, :path], :fallback) == :fallback
  end

  test "update/2 and the notification to subscribe/0 callers" do
    assert Config.subscribe() == :ok
    assert Config.update([:dev, :debug_mode], true) == :ok
    assert_receive {:config_notification, {:config_updated, [:dev, :debug_mode], true}}, 1_000
    assert Config.get([:dev, :debug_mode]) == {:ok, true}
    assert Config.unsubscribe() == :ok
    assert Config.update([:dev, :debug_mode], false) == :ok
    refute_receive {:config_notification, _}, 50
  end

  test "update/2 errors" do
    assert {:error, %Types.Error{error_type: :config_update_forbidden}} =
             Config.update([:ai, :provider], :openai)

    assert {:error, %Types.Error{error_type: :range_error}} =
             Config.update([:ai, :planning, :sampling_rate], 1.5)
  end

  test "safe_update/2 guards" do
    assert {:error, %Error{error_type: :invalid_path, code: 9999}} =
             Config.safe_update(:dev, true)

    for path <- [[:ai, :api_key], [:storage, :encryption_key], [:security], [:system, :node_name]] do
      assert {:error, %Error{error_type: :config_update_forbidden, code: 1401}} =
               Config.safe_update(path, "x")
    end

    assert Config.safe_update([:dev, :debug_mode], true) == :ok
    assert Config.get([:dev, :debug_mode]) == {:ok, true}
  end

  test "reset/0" do
    :ok = Config.update([:dev, :debug_mode], true)
    assert Config.reset() == :ok
    assert Config.get([:dev, :debug_mode]) == {:ok, false}
  end

  test "validate/1, updatable_paths/0, available?/0, status/0, initialize/0" do
    assert Config.validate(Types.Config.new()) == :ok
    assert [:dev, :debug_mode] in Config.updatable_paths()
    assert Config.available?()
    assert {:ok, %{status: :running}} = Config.status()
    assert Config.initialize() == :ok
  end
end
