# Sidekiq reads REDIS_URL (the app role's env file) itself. A job that fails is retried a
# few times, not for three weeks: this is a small example.
Sidekiq.default_worker_options = { "retry" => 5 } if Sidekiq.respond_to?(:default_worker_options=)
