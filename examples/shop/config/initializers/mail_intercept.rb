# Outside production the app role's env file sets MAIL_INTERCEPT_TO: every mail goes to that
# address instead, and its original recipients are kept in an X-Original-To header.
require "mail_intercept"

if (to = ENV["MAIL_INTERCEPT_TO"].presence)
  ActiveSupport.on_load(:action_mailer) do
    register_interceptor(MailIntercept.new(to))
  end
end
