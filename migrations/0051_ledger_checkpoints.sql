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

-- Folds the farm's ledger rows written since its last checkpoint into a new checkpoint and
-- returns how many rows it folded (0: nothing new, no checkpoint written).
--
-- Every ledger writer (reserve, settle, grant/adjust, expire) updates the farm's row before it
-- appends its leg, so taking the farm row FOR SHARE first waits for the writers in flight and
-- holds new ones back while the rows are summed: the checkpoint is a committed prefix of the
-- farm's chain, and every later row has a higher id. The lock lasts one short statement (the
-- rows since the last checkpoint), not the farm's history.
CREATE FUNCTION checkpoint_credit_ledger(farm uuid) RETURNS bigint
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  folded bigint;
BEGIN
  PERFORM 1 FROM farms WHERE id = farm FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'farm % does not exist', farm USING ERRCODE = 'no_data_found';
  END IF;
  WITH prev AS (
         SELECT * FROM credit_ledger_checkpoints WHERE farm_id = farm
          ORDER BY through_id DESC LIMIT 1),
       tail AS (
         SELECT max(l.id) AS through_id, count(*) AS entries, sum(l.delta) AS sum_delta,
                coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'grant'), 0) AS granted,
                coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'adjust'), 0) AS adjusted,
                coalesce(-sum(l.delta) FILTER (WHERE l.entry_type = 'reserve'), 0) AS reserved,
                coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'settle'), 0) AS refunded,
                coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'expire'), 0) AS expired,
                count(*) FILTER (WHERE l.balance_after < 0) AS negative_balances
           FROM credit_ledger l
          WHERE l.farm_id = farm
            AND l.id > coalesce((SELECT through_id FROM prev), 0)),
       ins AS (
         INSERT INTO credit_ledger_checkpoints
                (farm_id, through_id, entries, sum_delta, granted, adjusted, reserved, refunded,
                 expired, negative_balances, balance_after)
         SELECT farm, t.through_id,
                coalesce(p.entries, 0) + t.entries,
                coalesce(p.sum_delta, 0) + t.sum_delta,
                coalesce(p.granted, 0) + t.granted,
                coalesce(p.adjusted, 0) + t.adjusted,
                coalesce(p.reserved, 0) + t.reserved,
                coalesce(p.refunded, 0) + t.refunded,
                coalesce(p.expired, 0) + t.expired,
                coalesce(p.negative_balances, 0) + t.negative_balances,
                (SELECT balance_after FROM credit_ledger WHERE id = t.through_id)
           FROM tail t LEFT JOIN prev p ON true
          WHERE t.entries > 0
         RETURNING 1)
  SELECT coalesce((SELECT entries FROM tail), 0) * count(*) INTO folded FROM ins;
  RETURN folded;
END $$;
REVOKE ALL ON FUNCTION checkpoint_credit_ledger(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION checkpoint_credit_ledger(uuid) TO farmops_app;

-- The reconcile job learns which farms have at least `min_rows` ledger rows past their last
-- checkpoint (ids only, no data), then checkpoints each.
CREATE FUNCTION farms_due_ledger_checkpoint(min_rows bigint) RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT f.id FROM farms f
   WHERE (SELECT count(*) FROM (
            SELECT 1 FROM credit_ledger l
             WHERE l.farm_id = f.id
               AND l.id > coalesce((SELECT max(c.through_id) FROM credit_ledger_checkpoints c
                                     WHERE c.farm_id = f.id), 0)
             LIMIT greatest(min_rows, 1)) due) >= greatest(min_rows, 1)
$$;
REVOKE ALL ON FUNCTION farms_due_ledger_checkpoint(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION farms_due_ledger_checkpoint(bigint) TO farmops_app;

-- Open reservations of one farm (the evidence and credits totals), without walking the
-- farm's closed runs.
CREATE INDEX ai_runs_farm_open ON ai_runs (farm_id) WHERE status = 'reserved';
