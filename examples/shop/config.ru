# puma runs this (shared/puma.rb: `rackup current/config.ru`).
require_relative "config/environment"
run Rails.application
Rails.application.load_server
