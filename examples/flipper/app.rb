# GET /        the serving host's name
# GET /up      health check
# POST /jobs   enqueue a job that inserts a row into MySQL; answers the job's id
# GET /jobs/ID whether that job ran (its row exists), and where
require "json"
require "socket"
require "rack"
require_relative "worker"

module Flipper
  # The release this code came from (REVISION, written by `provision release`), read once
  # at boot from the release's own directory, so each answer names the code that made it.
  REVISION = begin
    File.read(File.join(File.realpath(__dir__), "REVISION")).strip
  rescue SystemCallError
    "unknown"
  end

  class App
    def call(env)
      req = Rack::Request.new(env)
      verb, path = req.request_method, req.path_info
      if %w[GET HEAD].include?(verb) && path == "/"
        text(200, "#{Socket.gethostname}\n")
      elsif %w[GET HEAD].include?(verb) && path == "/up"
        text(200, "up\n")
      elsif verb == "POST" && path == "/jobs"
        jid = InsertRowJob.perform_async
        json(202, id: jid, status: "queued")
      elsif verb == "GET" && (m = %r{\A/jobs/([0-9a-f]{1,64})\z}.match(path))
        jid = m[1]
        row = DB.with do |c|
          c.prepare("SELECT worker, created_at FROM jobs WHERE jid = ?").execute(jid).first
        end
        if row
          json(200, id: jid, ran: true, worker: row["worker"], at: row["created_at"].to_s)
        else
          json(404, id: jid, ran: false)
        end
      else
        text(404, "not found\n")
      end
    end

    private

    def text(status, body)
      [status, { "content-type" => "text/plain", "x-revision" => REVISION }, [body]]
    end

    def json(status, obj)
      [status, { "content-type" => "application/json", "x-revision" => REVISION }, [JSON.generate(obj) + "\n"]]
    end
  end
end
