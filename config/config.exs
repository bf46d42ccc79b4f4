import Config

# The foundation reads its settings from `config :elixir_scope_foundation`
# (this library's own app, so Mix does not warn about it) and, for hosts that
# replace the original in place, from `config :elixir_scope` (same keys; a key
# set under :elixir_scope_foundation wins). These are the original test
# settings for this project's own test suite; a host application sets its own.
if config_env() == :test do
  config :elixir_scope_foundation,
    test_mode: true,
    debug_registry: false,
    ai: [
      provider: :mock,
      analysis: [max_file_size: 100_000, timeout: 5_000, cache_ttl: 60],
      planning: [default_strategy: :fast, performance_target: 0.1, sampling_rate: 1.0]
    ],
    capture: [processing: [batch_size: 10, flush_interval: 10, max_queue_size: 100]],
    dev: [debug_mode: false, verbose_logging: false, performance_monitoring: false]

  config :logger, level: :warning
end
