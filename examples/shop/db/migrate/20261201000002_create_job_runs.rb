# One row per job run: which job, for which order, on which worker host, mailed to whom.
class CreateJobRuns < ActiveRecord::Migration[6.1]
  def change
    create_table :job_runs do |t|
      t.string :job_id, null: false, limit: 64
      t.references :order, null: false, foreign_key: true
      t.string :worker, null: false
      t.string :mailed_to, null: false
      t.timestamps
    end
    add_index :job_runs, :job_id, unique: true
  end
end
