# Production. staging.rb and sandbox.rb load this file and change only their names.
Rails.application.configure do
  config.cache_classes = true
  config.eager_load = true
  config.consider_all_requests_local = false
  config.action_controller.perform_caching = true

  # nginx serves public/ (and the fingerprinted assets under /assets with far-future
  # cache headers); puma only when RAILS_SERVE_STATIC_FILES is set.
  config.public_file_server.enabled = ENV["RAILS_SERVE_STATIC_FILES"].present?

  # Assets are precompiled on the controller and shipped in the release: never compiled
  # here. No compressors (they would need Node or sassc).
  config.assets.compile = false
  config.assets.css_compressor = nil
  config.assets.js_compressor = nil

  config.log_level = :info
  config.log_tags = [:request_id]
  if ENV["RAILS_LOG_TO_STDOUT"].present?
    config.logger = ActiveSupport::TaggedLogging.new(ActiveSupport::Logger.new($stdout))
  end
  config.log_formatter = ::Logger::Formatter.new

  config.action_mailer.perform_caching = false
  config.action_mailer.raise_delivery_errors = true
  config.i18n.fallbacks = true
  config.active_support.deprecation = :notify
  config.active_record.dump_schema_after_migration = false

  # The stage's name, shown on the page and in mail subjects ("" in production).
  config.x.stage_label = ""
end
