# GET / (the form), POST /orders (creates the order, enqueues its confirmation job),
# GET /orders/ID (the order and its job runs).
class OrdersController < ApplicationController
  def new
    @order = Order.new(quantity: 1)
    @host = Socket.gethostname
  end

  def create
    @order = Order.new(params.require(:order).permit(:email, :item, :quantity))
    if @order.save
      job = ConfirmOrderJob.perform_later(@order)
      redirect_to order_path(@order, job: job.job_id), status: :see_other
    else
      @host = Socket.gethostname
      render :new, status: :unprocessable_entity
    end
  end

  def show
    @order = Order.find(params[:id])
    @job_id = params[:job].to_s[/\A[0-9a-f-]{1,64}\z/]
  end
end
