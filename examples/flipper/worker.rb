# Loaded by sidekiq (`sidekiq -r ./worker.rb`) and by the web app (to enqueue).
# Redis comes from REDIS_URL (the env file).
require "sidekiq"
require "socket"
require_relative "db"

module Flipper
  class InsertRowJob
    include Sidekiq::Worker

    # Inserts one row named by the job's id, recording which worker ran it.
    def perform
      Flipper::DB.with do |c|
        st = c.prepare("INSERT IGNORE INTO jobs (jid, worker) VALUES (?, ?)")
        st.execute(jid, Socket.gethostname)
      end
    end
  end
end
