defmodule ElixirScope.Foundation.ProcessRegistry do
  @moduledoc """
  Namespaced process registry built on Elixir's `Registry`.

  (Minimal skeleton: child_spec and via_tuple. The full API of API.md
  section 13 is being built on branch h4.)
  """

  @typedoc "A registry namespace: production, or an isolated test namespace."
  @type namespace :: :production | {:test, reference()}
  @typedoc "A service name."
  @type service_name :: atom()

  @doc "Child spec of the `Registry` (exactly the original's)."
  @spec child_spec(term()) :: Supervisor.child_spec()
  def child_spec(_opts) do
    %{
      id: Registry,
      start:
        {Registry, :start_link,
         [[keys: :unique, name: __MODULE__, partitions: System.schedulers_online()]]},
      type: :supervisor,
      restart: :permanent,
      shutdown: :infinity
    }
  end

  @doc "The `:via` name of `service` in `namespace`."
  @spec via_tuple(namespace(), service_name()) :: {:via, Registry, {module(), term()}}
  def via_tuple(namespace, service), do: {:via, Registry, {__MODULE__, {namespace, service}}}
end
