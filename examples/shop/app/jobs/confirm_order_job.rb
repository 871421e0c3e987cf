require "socket"

# Run by sidekiq: mails the order's confirmation, then records the run (job id, worker host,
# where the mail went). Retried as a whole if the mail cannot be handed over; the row is
# written once.
class ConfirmOrderJob < ApplicationJob
  queue_as :default

  def perform(order)
    mail = OrderMailer.with(order: order).confirmation.deliver_now
    JobRun.create_or_find_by!(job_id: job_id) do |run|
      run.order = order
      run.worker = Socket.gethostname
      run.mailed_to = Array(mail.to).join(", ")
    end
  end
end
