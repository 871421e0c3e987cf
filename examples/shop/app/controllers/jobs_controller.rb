# JSON without a form or a session (the stack tests' contract):
#   POST /jobs       creates an order (email and item optional) and enqueues its job:
#                    202 {"id": JOB_ID, "order": ORDER_ID, "status": "queued"}
#   GET  /jobs/ID    200 {"id", "ran": true, "worker", "mailed_to", "at", "order"} once it
#                    ran, 404 {"id", "ran": false} before.
class JobsController < ActionController::API
  def create
    order = Order.new(email: params.fetch(:email, "customer@example.com"),
                      item: params.fetch(:item, "sample"), quantity: 1)
    return render(json: { errors: order.errors.full_messages }, status: :unprocessable_entity) unless order.save

    job = ConfirmOrderJob.perform_later(order)
    render json: { id: job.job_id, order: order.id, status: "queued" }, status: :accepted
  end

  def show
    run = JobRun.find_by(job_id: params[:id])
    if run
      render json: { id: run.job_id, ran: true, worker: run.worker, mailed_to: run.mailed_to,
                     at: run.created_at.utc.iso8601, order: run.order_id }
    else
      render json: { id: params[:id], ran: false }, status: :not_found
    end
  end
end
