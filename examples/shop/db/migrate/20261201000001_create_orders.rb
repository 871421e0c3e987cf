class CreateOrders < ActiveRecord::Migration[6.1]
  def change
    create_table :orders do |t|
      t.string :email, null: false
      t.string :item, null: false
      t.integer :quantity, null: false, default: 1
      t.timestamps
    end
  end
end
