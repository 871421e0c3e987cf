# Loaded by config.ru (puma), by sidekiq (`sidekiq -r .`) and by bin/rails.
require_relative "application"
Rails.application.initialize!
