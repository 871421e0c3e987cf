class ApplicationMailer < ActionMailer::Base
  layout false
end
