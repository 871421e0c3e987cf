# A mail interceptor (ActionMailer calls #delivering_email before delivery): sends the mail
# to `to` only, and records who it was for in X-Original-To (To, Cc and Bcc together).
class MailIntercept
  def initialize(to)
    @to = to
  end

  def delivering_email(message)
    original = [message.to, message.cc, message.bcc].flatten.compact
    message.header["X-Original-To"] = original.join(", ")
    message.to = @to
    message.cc = nil
    message.bcc = nil
  end
end
