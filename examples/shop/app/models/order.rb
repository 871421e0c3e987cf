class Order < ApplicationRecord
  has_many :job_runs, dependent: :destroy

  validates :email, presence: true, length: { maximum: 255 },
                    format: { with: /\A[^@\s]+@[^@\s]+\z/, message: "is not an e-mail address" }
  validates :item, presence: true, length: { maximum: 100 }
  validates :quantity, numericality: { only_integer: true, greater_than: 0, less_than: 100 }
end
