require "socket"

class ApplicationController < ActionController::Base
  after_action :tag_response

  private

  # Which app host and which release answered (the load-balancing and release checks).
  def tag_response
    response.set_header("X-Served-By", Socket.gethostname)
    response.set_header("X-Revision", Rails.configuration.x.revision)
  end
end
