# The database: config/database.yml (a link to shared/config/database.yml, written by the
# app role) for the current RACK_ENV, through a connection pool of its `pool` size.
require "erb"
require "yaml"
require "mysql2"
require "connection_pool"

module Flipper
  module DB
    ROOT = File.expand_path(__dir__)

    def self.config
      @config ||= begin
        env = ENV.fetch("RACK_ENV") { ENV.fetch("RAILS_ENV", "development") }
        all = YAML.safe_load(ERB.new(File.read(File.join(ROOT, "config", "database.yml"))).result, aliases: true)
        all.fetch(env) { raise "config/database.yml has no section for #{env}" }
      end
    end

    def self.pool
      @pool ||= ConnectionPool.new(size: Integer(config.fetch("pool", 5)), timeout: 5) do
        Mysql2::Client.new(host: config["host"], port: Integer(config.fetch("port", 3306)),
                           username: config["username"], password: config["password"].to_s,
                           database: config["database"], encoding: "utf8mb4", reconnect: true)
      end
    end

    # The table is created by whoever needs it first (this example has no migrations).
    def self.with
      pool.with do |c|
        @table ||= c.query(<<~SQL) || true
          CREATE TABLE IF NOT EXISTS jobs (
            id INT AUTO_INCREMENT PRIMARY KEY,
            jid VARCHAR(64) NOT NULL UNIQUE,
            worker VARCHAR(255) NOT NULL,
            created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
          ) DEFAULT CHARSET=utf8mb4
        SQL
        yield c
      end
    end
  end
end
