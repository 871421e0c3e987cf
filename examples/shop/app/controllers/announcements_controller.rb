require "net/http"
require "json"

# POST /announcements (text=...): publishes {"text": ...} on faye's /announcements channel,
# server-side, with faye's HTTP publish (a POST of the message to faye's mount, FAYE_URL).
# Answers faye's reply: 200 {"published": true, ...} or 502.
class AnnouncementsController < ActionController::API
  CHANNEL = "/announcements".freeze

  def create
    url = Rails.configuration.x.faye_url
    return render(json: { published: false, error: "FAYE_URL is not set" }, status: :service_unavailable) if url.blank?

    message = { channel: CHANNEL, data: { text: params.fetch(:text, "hello").to_s[0, 500], from: Socket.gethostname } }
    uri = URI(url)
    res = Net::HTTP.start(uri.host, uri.port, use_ssl: uri.scheme == "https", open_timeout: 3, read_timeout: 5) do |http|
      http.post(uri.request_uri, JSON.generate(message), "Content-Type" => "application/json")
    end
    reply = begin
      Array.wrap(JSON.parse(res.body))
    rescue JSON::ParserError
      []
    end
    ok = res.is_a?(Net::HTTPSuccess) && reply.any? { |m| m.is_a?(Hash) && m["successful"] == true }
    render json: { published: ok, channel: CHANNEL, faye: reply }, status: ok ? :ok : :bad_gateway
  rescue SystemCallError, Net::OpenTimeout, Net::ReadTimeout, IOError => e
    render json: { published: false, error: e.class.name }, status: :bad_gateway
  end
end
