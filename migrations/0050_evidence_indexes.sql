-- Evidence: a run's ledger legs and feedback are read by run id for a page of runs.
-- The two unique partial indexes on credit_ledger (one reserve, one close per run) cannot
-- serve `ai_run_id = ANY(...)` alone; this one can, for every leg type.
CREATE INDEX credit_ledger_run ON credit_ledger (farm_id, ai_run_id) WHERE ai_run_id IS NOT NULL;
CREATE INDEX ai_feedback_run ON ai_feedback (farm_id, ai_run_id);
