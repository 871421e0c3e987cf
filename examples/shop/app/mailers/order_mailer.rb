class OrderMailer < ApplicationMailer
  def confirmation
    @order = params[:order]
    label = Rails.configuration.x.stage_label
    subject = "Order ##{@order.id} received"
    mail(to: @order.email, subject: label.present? ? "[#{label}] #{subject}" : subject)
  end
end
