require_relative "boot"

require "rails"
require "active_model/railtie"
require "active_job/railtie"
require "active_record/railtie"
require "action_controller/railtie"
require "action_mailer/railtie"
require "action_view/railtie"
require "sprockets/railtie"

Bundler.require(*Rails.groups)

module Shop
  class Application < Rails::Application
    config.load_defaults 6.1

    # Jobs go to Sidekiq; Redis comes from REDIS_URL (the app role's env file).
    config.active_job.queue_adapter = :sidekiq

    # Mail leaves through the host's sendmail (the MTA).
    config.action_mailer.delivery_method = :sendmail
    config.action_mailer.default_options = { from: ENV.fetch("MAIL_FROM", "shop@example.com") }

    # The revision of this release (REVISION, written by `provision release`), read once.
    config.x.revision = begin
      File.read(File.expand_path("../REVISION", __dir__)).strip
    rescue SystemCallError
      "unknown"
    end

    # Where faye's HTTP endpoint is (the app role's env file sets FAYE_URL when the
    # inventory has a faye host).
    config.x.faye_url = ENV["FAYE_URL"]
  end
end
