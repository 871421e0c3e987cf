# flipper: the example Rack app of the stack. Debian-packaged gems only
# (puma, ruby-rack, ruby-sidekiq, ruby-redis, ruby-mysql2, ruby-connection-pool).
require_relative "app"
run Flipper::App.new
