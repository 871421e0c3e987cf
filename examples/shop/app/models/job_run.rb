class JobRun < ApplicationRecord
  belongs_to :order
end
