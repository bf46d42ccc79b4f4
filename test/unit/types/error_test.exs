defmodule ElixirScope.Foundation.Types.ErrorTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Types.Error

  doctest Error

  @fields [
    :code,
    :error_type,
    :message,
    :severity,
    :context,
    :correlation_id,
    :timestamp,
    :stacktrace,
    :category,
    :subcategory,
    :retry_strategy,
    :recovery_actions
  ]

  test "has the same fields as ElixirScope.Foundation.Error" do
    assert (Map.keys(Error.new()) -- [:__struct__]) |> Enum.sort() == Enum.sort(@fields)

    assert Map.keys(%ElixirScope.Foundation.Error{
             code: 1,
             error_type: :x,
             message: "",
             severity: :low
           })
           |> Enum.sort() == Map.keys(Error.new()) |> Enum.sort()
  end

  test "new/0 does not raise on missing required keys" do
    e = Error.new()
    assert {e.code, e.error_type, e.message, e.severity} == {nil, nil, nil, nil}
    assert e.context == %{}
    assert e.recovery_actions == []
    assert %DateTime{} = e.timestamp

    for field <- [:retry_strategy, :category, :subcategory, :stacktrace, :correlation_id] do
      assert Map.fetch!(e, field) == nil
    end
  end

  test "new/1 sets fields, overrides defaults and ignores unknown keys" do
    ts = ~U[2024-01-01 00:00:00Z]

    e =
      Error.new(
        code: 5001,
        error_type: :service_not_found,
        message: "m",
        severity: :medium,
        context: %{a: 1},
        timestamp: ts,
        recovery_actions: ["x"],
        bogus: 1
      )

    assert e.code == 5001
    assert e.context == %{a: 1}
    assert e.timestamp == ts
    assert e.recovery_actions == ["x"]
    refute Map.has_key?(e, :bogus)
  end

  test "explicit nil overrides a default" do
    assert Error.new(context: nil).context == nil
  end

  test "the struct literal enforces the four required keys" do
    assert_raise ArgumentError, fn ->
      Code.eval_string("%ElixirScope.Foundation.Types.Error{}")
    end

    {e, _} =
      Code.eval_string(
        "%ElixirScope.Foundation.Types.Error{code: 1, error_type: :x, message: \"m\", severity: :low}"
      )

    assert e.context == nil
  end

  test "is a distinct struct from ElixirScope.Foundation.Error" do
    refute match?(%ElixirScope.Foundation.Error{}, Error.new())
  end

  test "non-keyword input raises" do
    assert_raise FunctionClauseError, fn -> Error.new(%{code: 1}) end
  end
end
