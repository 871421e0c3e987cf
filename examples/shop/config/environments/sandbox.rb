# sandbox: production's settings, under its own name (RAILS_ENV=sandbox, the inventory's stage).
# Mail never reaches real users here: the app role sets MAIL_INTERCEPT_TO on every stage but
# production (config/initializers/mail_intercept.rb).
require_relative "production"

Rails.application.configure do
  config.x.stage_label = "sandbox"
end
