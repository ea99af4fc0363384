-- Ledger checkpoints: a farm's ledger folded up to one of its rows, so reading the farm's
-- totals and its invariant (credit_balance = last balance_after = sum(delta)) costs the rows
-- written since the last checkpoint instead of the whole history (evidence and credits pages
-- of a farm with 100,000 runs).
--
-- A checkpoint is written only by checkpoint_credit_ledger() below, which computes it from
-- the ledger itself (the previous checkpoint plus the rows after it); the application cannot
-- insert one, and nobody can change or delete one. The ledger is append-only, so a
-- checkpoint can never go stale. The operator's full audit (`farmops audit`, credits::
-- audit_ledger) re-sums the whole ledger and checks the latest checkpoint against it.
CREATE TABLE credit_ledger_checkpoints (
  farm_id            uuid NOT NULL REFERENCES farms (id),
  through_id         bigint NOT NULL,   -- the farm's last ledger row folded in
  entries            bigint NOT NULL CHECK (entries > 0),
  sum_delta          bigint NOT NULL,
  granted            bigint NOT NULL,   -- sum of grant legs
  adjusted           bigint NOT NULL,   -- sum of adjust legs (signed)
  reserved           bigint NOT NULL,   -- credits taken by reserve legs (positive)
  refunded           bigint NOT NULL,   -- sum of settle legs
  expired            bigint NOT NULL,   -- sum of expire legs
  negative_balances  bigint NOT NULL,   -- rows with balance_after < 0 (the schema refuses them)
  balance_after      bigint NOT NULL,   -- balance_after of row through_id
  created_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (farm_id, through_id)
);

CREATE TRIGGER credit_ledger_checkpoints_append_only BEFORE UPDATE OR DELETE ON credit_ledger_checkpoints
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER credit_ledger_checkpoints_no_truncate BEFORE TRUNCATE ON credit_ledger_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

SELECT enable_tenant_rls('credit_ledger_checkpoints', 'SELECT');

-- A farm's ledger rows after `after_id`, summed: the one definition of the sums that the
-- checkpoints fold and that evidence::farm_ledger adds to the latest checkpoint. Plain SQL,
-- invoker's rights, so the planner inlines it and sees `after_id` (an index range scan of the
-- rows after the checkpoint, not the farm's history) and the caller's row-level security
-- applies.
CREATE FUNCTION credit_ledger_sums(farm uuid, after_id bigint)
  RETURNS TABLE (through_id bigint, entries bigint, sum_delta bigint, granted bigint,
                 adjusted bigint, reserved bigint, refunded bigint, expired bigint,
                 negative_balances bigint)
  LANGUAGE sql STABLE AS $$
  SELECT max(l.id), count(*), coalesce(sum(l.delta), 0)::bigint,
         coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'grant'), 0)::bigint,
         coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'adjust'), 0)::bigint,
         coalesce(-sum(l.delta) FILTER (WHERE l.entry_type = 'reserve'), 0)::bigint,
         coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'settle'), 0)::bigint,
         coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'expire'), 0)::bigint,
         count(*) FILTER (WHERE l.balance_after < 0)
    FROM credit_ledger l
   WHERE l.farm_id = farm AND l.id > after_id
$$;
REVOKE ALL ON FUNCTION credit_ledger_sums(uuid, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit_ledger_sums(uuid, bigint) TO farmops_app;

-- Folds the farm's ledger rows written since its last checkpoint into a new checkpoint and
-- returns how many rows it folded (0: nothing new, no checkpoint written).
--
-- Every ledger writer (reserve, settle, grant/adjust, expire) updates the farm's row before it
-- appends its leg, so taking the farm row FOR SHARE first waits for the writers in flight and
-- holds new ones back while the rows are summed: the checkpoint is a committed prefix of the
-- farm's chain, and every later row has a higher id. The lock lasts while the rows since the
-- last checkpoint are summed, not the farm's history.
CREATE FUNCTION checkpoint_credit_ledger(farm uuid) RETURNS bigint
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  prev credit_ledger_checkpoints;
  tail record;
BEGIN
  PERFORM 1 FROM farms WHERE id = farm FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'farm % does not exist', farm USING ERRCODE = 'no_data_found';
  END IF;
  SELECT * INTO prev FROM credit_ledger_checkpoints WHERE farm_id = farm
   ORDER BY through_id DESC LIMIT 1;
  -- a variable, not a subquery: the statement is planned with the value (index range scan)
  SELECT * INTO tail FROM credit_ledger_sums(farm, coalesce(prev.through_id, 0));
  IF tail.entries = 0 THEN
    RETURN 0;
  END IF;
  INSERT INTO credit_ledger_checkpoints
         (farm_id, through_id, entries, sum_delta, granted, adjusted, reserved, refunded,
          expired, negative_balances, balance_after)
  VALUES (farm, tail.through_id,
          coalesce(prev.entries, 0) + tail.entries,
          coalesce(prev.sum_delta, 0) + tail.sum_delta,
          coalesce(prev.granted, 0) + tail.granted,
          coalesce(prev.adjusted, 0) + tail.adjusted,
          coalesce(prev.reserved, 0) + tail.reserved,
          coalesce(prev.refunded, 0) + tail.refunded,
          coalesce(prev.expired, 0) + tail.expired,
          coalesce(prev.negative_balances, 0) + tail.negative_balances,
          (SELECT balance_after FROM credit_ledger WHERE id = tail.through_id));
  RETURN tail.entries;
END $$;
REVOKE ALL ON FUNCTION checkpoint_credit_ledger(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION checkpoint_credit_ledger(uuid) TO farmops_app;

-- The reconcile job learns which farms are due a checkpoint (ids only, no data): at least
-- `min_rows` ledger rows past their last checkpoint, or any new row when their last checkpoint
-- (or their first row, without one) is older than `max_age`. The age rule keeps a quiet farm's
-- checkpoint recent too, so the rows after any farm's checkpoint are a recent slice of the
-- ledger, which the planner reads by index.
CREATE FUNCTION farms_due_ledger_checkpoint(min_rows bigint, max_age interval) RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT f.id
    FROM farms f
    LEFT JOIN LATERAL (
      SELECT c.through_id, c.created_at FROM credit_ledger_checkpoints c
       WHERE c.farm_id = f.id ORDER BY c.through_id DESC LIMIT 1) cp ON true
   WHERE (SELECT count(*) FROM (
            SELECT 1 FROM credit_ledger l
             WHERE l.farm_id = f.id AND l.id > coalesce(cp.through_id, 0)
             LIMIT greatest(min_rows, 1)) due) >= greatest(min_rows, 1)
      OR (EXISTS (SELECT 1 FROM credit_ledger l
                   WHERE l.farm_id = f.id AND l.id > coalesce(cp.through_id, 0))
          AND coalesce(cp.created_at,
                       (SELECT l.created_at FROM credit_ledger l
                         WHERE l.farm_id = f.id ORDER BY l.id LIMIT 1)) < now() - max_age)
$$;
REVOKE ALL ON FUNCTION farms_due_ledger_checkpoint(bigint, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION farms_due_ledger_checkpoint(bigint, interval) TO farmops_app;

-- Open reservations of one farm (the evidence and credits totals), without walking the
-- farm's closed runs.
CREATE INDEX ai_runs_farm_open ON ai_runs (farm_id) WHERE status = 'reserved';
