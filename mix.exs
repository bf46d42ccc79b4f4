defmodule ElixirScope.Foundation.MixProject do
  use Mix.Project

  @version "0.1.0"

  def project do
    [
      app: :elixir_scope_foundation,
      version: @version,
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      elixirc_paths: elixirc_paths(Mix.env()),
      # Our own cargo compiler runs after :elixir has compiled it (it lives in lib/).
      compilers: Mix.compilers() ++ [:foundation_nif],
      deps: [],
      aliases: aliases(),
      test_coverage: [summary: [threshold: 0]]
    ]
  end

  def application do
    [
      extra_applications: [:logger, :crypto],
      mod: {ElixirScope.Foundation.Application, []}
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]

  defp aliases do
    []
  end
end
