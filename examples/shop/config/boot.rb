# The bundle is Debian's installed gems (Gemfile.lock), nothing vendored.
ENV["BUNDLE_GEMFILE"] ||= File.expand_path("../Gemfile", __dir__)
require "bundler/setup"
