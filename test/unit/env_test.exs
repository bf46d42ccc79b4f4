defmodule ElixirScope.Foundation.EnvTest do
  # Changes the application env of both app names: not async.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  alias ElixirScope.Foundation.Env
  alias ElixirScope.Foundation.Logic.ConfigLogic
  alias ElixirScope.Foundation.Services.ConfigServer

  doctest ElixirScope.Foundation.Env

  @ours :elixir_scope_foundation
  @legacy :elixir_scope

  # Runs `fun` with `env` set under `app` (a keyword of key => value), then
  # restores both apps' previous values.
  defp with_env(settings, fun) do
    saved =
      for {app, key, _} <- settings,
          do: {app, key, Application.fetch_env(app, key)}

    try do
      Enum.each(settings, fn {app, key, value} -> Application.put_env(app, key, value) end)
      fun.()
    after
      Enum.each(saved, fn
        {app, key, {:ok, value}} -> Application.put_env(app, key, value)
        {app, key, :error} -> Application.delete_env(app, key)
      end)
    end
  end

  describe "get/2 precedence" do
    test "a key under :elixir_scope_foundation wins over :elixir_scope" do
      with_env([{@ours, :env_probe, 1}, {@legacy, :env_probe, 2}], fn ->
        assert Env.get(:env_probe) == 1
        assert Env.fetch(:env_probe) == {:ok, 1, @ours}
      end)
    end

    test "a key only under :elixir_scope is read (drop-in hosts)" do
      with_env([{@legacy, :env_probe, 2}], fn ->
        assert Env.get(:env_probe, :default) == 2
        assert Env.fetch(:env_probe) == {:ok, 2, @legacy}
      end)
    end

    test "a key set under neither gives the default" do
      assert Env.get(:env_probe_never_set, :default) == :default
      assert Env.fetch(:env_probe_never_set) == :error
    end

    test "false under :elixir_scope_foundation still wins (set is not the same as truthy)" do
      with_env([{@ours, :env_probe, false}, {@legacy, :env_probe, true}], fn ->
        assert Env.get(:env_probe, true) == false
      end)
    end

    test "all/0 merges per key with :elixir_scope_foundation winning" do
      with_env([{@ours, :env_a, :ours}, {@legacy, :env_a, :legacy}, {@legacy, :env_b, :b}], fn ->
        all = Env.all()
        assert all[:env_a] == :ours
        assert all[:env_b] == :b
      end)
    end
  end

  describe "services read either app name" do
    test "test_mode under :elixir_scope is honoured when not set under our app" do
      saved = Application.fetch_env!(@ours, :test_mode)
      Application.delete_env(@ours, :test_mode)

      try do
        with_env([{@legacy, :test_mode, false}], fn ->
          assert {:error, %{error_type: :operation_forbidden}} = ConfigServer.reset_state()
        end)

        with_env([{@legacy, :test_mode, true}], fn -> assert :ok = ConfigServer.reset_state() end)
      after
        Application.put_env(@ours, :test_mode, saved)
      end
    end

    test "build_config takes a section from :elixir_scope when our app does not set it" do
      saved = Application.fetch_env(@ours, :interface)
      Application.delete_env(@ours, :interface)

      try do
        with_env([{@legacy, :interface, [max_results: 77]}], fn ->
          assert {:ok, config} = ConfigLogic.build_config()
          assert config.interface.max_results == 77
        end)

        with_env(
          [{@ours, :interface, [max_results: 88]}, {@legacy, :interface, [max_results: 77]}],
          fn ->
            assert {:ok, config} = ConfigLogic.build_config()
            assert config.interface.max_results == 88
          end
        )
      after
        with {:ok, value} <- saved, do: Application.put_env(@ours, :interface, value)
      end
    end
  end

  describe "check_config/0 and the application start" do
    test "the test configuration passes" do
      assert Env.check_config() == :ok
    end

    test "a bad value names the app, the key path and the value" do
      ai = Application.fetch_env!(@ours, :ai)
      bad = put_in(ai, [:planning, :sampling_rate], 7)

      with_env([{@ours, :ai, bad}], fn ->
        assert {:error, message} = Env.check_config()

        assert message =~
                 "invalid :elixir_scope_foundation config at [:ai, :planning, :sampling_rate]: 7"

        assert message =~ "between 0 and 1"
      end)
    end

    test "a bad value under :elixir_scope names :elixir_scope" do
      saved = Application.fetch_env!(@ours, :capture)
      Application.delete_env(@ours, :capture)

      try do
        with_env([{@legacy, :capture, [processing: [batch_size: -3]]}], fn ->
          assert {:error, message} = Env.check_config()

          assert message =~
                   "invalid :elixir_scope config at [:capture, :processing, :batch_size]: -3"
        end)
      after
        Application.put_env(@ours, :capture, saved)
      end
    end

    test "a section of the wrong shape is named" do
      with_env([{@ours, :dev, :verbose}], fn ->
        assert {:error, message} = Env.check_config()
        assert message =~ "config at [:dev]: :verbose"
      end)
    end

    test "the application refuses to start and logs the offending key" do
      ai = Application.fetch_env!(@ours, :ai)

      with_env([{@ours, :ai, put_in(ai, [:planning, :sampling_rate], 7)}], fn ->
        log =
          capture_log(fn ->
            assert {:error, {:invalid_config, message}} =
                     ElixirScope.Foundation.Application.start(:normal, [])

            assert message =~ "[:ai, :planning, :sampling_rate]: 7"
          end)

        assert log =~
                 "invalid :elixir_scope_foundation config at [:ai, :planning, :sampling_rate]: 7"
      end)
    end
  end
end
