Rails.application.routes.draw do
  # Health check for the release gate and the load balancer: nothing slow, no database.
  get "/up", to: proc { [200, { "Content-Type" => "text/plain" }, ["up\n"]] }

  root "orders#new"
  resources :orders, only: %i[create show]

  # JSON, without a form: the contract the stack tests use (POST /jobs, GET /jobs/ID).
  post "/jobs", to: "jobs#create"
  get "/jobs/:id", to: "jobs#show", constraints: { id: /[0-9a-f-]{1,64}/ }

  # Publishes a message to faye, server-side.
  post "/announcements", to: "announcements#create"
end
