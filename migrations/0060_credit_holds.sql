-- Holds sized to each model call, and a ledger the application role can reach only through
-- four functions.
--
-- 1. A run holds credits in one or more `reserve` legs (one before each model call that needs
--    more): `ai_runs.credits_reserved` is the sum of its hold legs, and grows only while the
--    run is open. A run is still closed exactly once (settled or expired).
-- 2. The application role (`farmops_app`) loses every direct write on the ledger, the runs and
--    the balance. It opens, tops up, settles and expires runs through the SECURITY DEFINER
--    functions below, each of which works on the transaction's tenant only and computes every
--    amount itself. It cannot write a `grant` or `adjust` leg at all: credits come only from the
--    owner role (the operator CLI) or from a payments door of its own.
-- 3. Whoever writes (the owner included), a deferred check at commit keeps every run and its
--    legs in agreement: held = sum of its hold legs (at least one); an open run has no closing
--    leg; a settled run has one settle leg returning exactly held - charged; an expired run one
--    expire leg returning everything it held.

DROP INDEX credit_ledger_one_reserve;

REVOKE INSERT ON credit_ledger FROM farmops_app;
REVOKE UPDATE (credit_balance) ON farms FROM farmops_app;
REVOKE INSERT, UPDATE ON ai_runs FROM farmops_app;

-- A hold only grows, and only while the run is open; the rest is as before (0002).
CREATE OR REPLACE FUNCTION ai_runs_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status <> 'reserved' THEN
    RAISE EXCEPTION 'ai run % is % and can no longer change', OLD.id, OLD.status
      USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.farm_id <> OLD.farm_id OR NEW.id <> OLD.id OR NEW.created_at <> OLD.created_at
     OR NEW.feature <> OLD.feature THEN
    RAISE EXCEPTION 'ai run %: farm, id, feature and creation time are fixed', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.credits_reserved < OLD.credits_reserved
     OR (NEW.credits_reserved > OLD.credits_reserved AND NEW.status <> 'reserved') THEN
    RAISE EXCEPTION 'ai run %: a hold only grows, while the run is open (% -> %)',
      OLD.id, OLD.credits_reserved, NEW.credits_reserved
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;

-- At commit: the run row agrees with its legs (see 3. above).
CREATE FUNCTION ai_run_check_legs() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  run     uuid;
  r       ai_runs%ROWTYPE;
  held    bigint;
  holds   bigint;
  settled bigint;
  settles bigint;
  expired bigint;
  expires bigint;
BEGIN
  IF TG_TABLE_NAME = 'ai_runs' THEN
    run := NEW.id;
  ELSE
    run := NEW.ai_run_id;
  END IF;
  SELECT * INTO r FROM ai_runs WHERE id = run;
  SELECT coalesce(-sum(delta) FILTER (WHERE entry_type = 'reserve'), 0),
         count(*) FILTER (WHERE entry_type = 'reserve'),
         coalesce(sum(delta) FILTER (WHERE entry_type = 'settle'), 0),
         count(*) FILTER (WHERE entry_type = 'settle'),
         coalesce(sum(delta) FILTER (WHERE entry_type = 'expire'), 0),
         count(*) FILTER (WHERE entry_type = 'expire')
    INTO held, holds, settled, settles, expired, expires
    FROM credit_ledger WHERE farm_id = r.farm_id AND ai_run_id = run;
  IF holds = 0 OR held <> r.credits_reserved THEN
    RAISE EXCEPTION 'ai run % holds % but its % hold legs add up to %',
      run, r.credits_reserved, holds, held USING ERRCODE = 'check_violation';
  END IF;
  IF (r.status = 'reserved' AND settles + expires <> 0)
     OR (r.status IN ('succeeded', 'failed')
         AND (settles <> 1 OR expires <> 0 OR settled <> r.credits_reserved - r.credits_charged))
     OR (r.status = 'expired' AND (expires <> 1 OR settles <> 0 OR expired <> r.credits_reserved)) THEN
    RAISE EXCEPTION 'ai run % (%, held %, charged %) disagrees with its closing legs (settled % in %, expired % in %)',
      run, r.status, r.credits_reserved, r.credits_charged, settled, settles, expired, expires
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ai_runs_match_legs AFTER INSERT OR UPDATE ON ai_runs
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ai_run_check_legs();
CREATE CONSTRAINT TRIGGER credit_ledger_matches_run AFTER INSERT ON credit_ledger
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.ai_run_id IS NOT NULL)
  EXECUTE FUNCTION ai_run_check_legs();

-- The functions act on the transaction's tenant only (as every policy does).
CREATE FUNCTION credit_require_tenant(farm uuid) RETURNS void
  LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF farm IS NULL OR farm IS DISTINCT FROM current_farm_id() THEN
    RAISE EXCEPTION 'farm % is not the tenant of this transaction', farm
      USING ERRCODE = 'insufficient_privilege';
  END IF;
END $$;

-- Opens a run holding `credits` for its first call. Refused (the farm cannot pay): run_id
-- is null and balance is the farm's balance as it stands.
CREATE FUNCTION credit_open_run(farm uuid, run_feature text, run_model text, run_user text,
                                summary text, credits bigint)
  RETURNS TABLE (run_id uuid, held bigint, balance bigint)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  bal bigint;
  rid uuid;
BEGIN
  PERFORM credit_require_tenant(farm);
  IF credits IS NULL OR credits <= 0 THEN
    RAISE EXCEPTION 'a hold must be positive, not %', credits USING ERRCODE = 'check_violation';
  END IF;
  UPDATE farms f SET credit_balance = f.credit_balance - credits
   WHERE f.id = farm AND f.credit_balance >= credits
  RETURNING f.credit_balance INTO bal;
  IF NOT FOUND THEN
    RETURN QUERY SELECT NULL::uuid, 0::bigint, f.credit_balance FROM farms f WHERE f.id = farm;
    RETURN;
  END IF;
  INSERT INTO ai_runs (farm_id, feature, model, user_id, credits_reserved, request_summary)
  VALUES (farm, run_feature, run_model, run_user, credits, summary)
  RETURNING id INTO rid;
  INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor)
  VALUES (farm, 'reserve', -credits, bal, rid, coalesce(run_user, 'system'));
  RETURN QUERY SELECT rid, credits, bal;
END $$;

-- Tops up an open run's hold by `credits` (before a call that needs more). Refused (the
-- farm cannot pay): held is null and balance is the farm's balance as it stands. A run that
-- is not open on this farm is an error.
CREATE FUNCTION credit_hold(farm uuid, run uuid, credits bigint)
  RETURNS TABLE (held bigint, balance bigint)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  total bigint;
  bal   bigint;
BEGIN
  PERFORM credit_require_tenant(farm);
  IF credits IS NULL OR credits <= 0 THEN
    RAISE EXCEPTION 'a hold must be positive, not %', credits USING ERRCODE = 'check_violation';
  END IF;
  UPDATE farms f SET credit_balance = f.credit_balance - credits
   WHERE f.id = farm AND f.credit_balance >= credits
  RETURNING f.credit_balance INTO bal;
  IF NOT FOUND THEN
    RETURN QUERY SELECT NULL::bigint, f.credit_balance FROM farms f WHERE f.id = farm;
    RETURN;
  END IF;
  UPDATE ai_runs r SET credits_reserved = r.credits_reserved + credits
   WHERE r.farm_id = farm AND r.id = run AND r.status = 'reserved'
  RETURNING r.credits_reserved INTO total;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'ai run % is not open on farm %', run, farm
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor)
  VALUES (farm, 'reserve', -credits, bal, run, 'system');
  RETURN QUERY SELECT total, bal;
END $$;

-- Charges `charged` and returns the rest of the hold; closes the run. Already closed: no row
-- (settling twice changes nothing). A charge above the hold is refused (ai_runs' check).
CREATE FUNCTION credit_settle_run(farm uuid, run uuid, failed boolean, charged bigint,
                                  tokens_in integer, tokens_out integer, latency integer,
                                  summary text, failure text)
  RETURNS TABLE (reserved bigint, charged_credits bigint, refunded bigint, balance bigint)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  total bigint;
  bal   bigint;
BEGIN
  PERFORM credit_require_tenant(farm);
  UPDATE ai_runs r
     SET status = CASE WHEN failed THEN 'failed' ELSE 'succeeded' END,
         credits_charged = charged, input_tokens = tokens_in, output_tokens = tokens_out,
         latency_ms = latency, response_summary = summary, error = failure, finished_at = now()
   WHERE r.farm_id = farm AND r.id = run AND r.status = 'reserved'
  RETURNING r.credits_reserved INTO total;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  UPDATE farms f SET credit_balance = f.credit_balance + (total - charged)
   WHERE f.id = farm
  RETURNING f.credit_balance INTO bal;
  INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor)
  VALUES (farm, 'settle', total - charged, bal, run, 'system');
  RETURN QUERY SELECT total, charged, total - charged, bal;
END $$;

-- Expires the farm's runs opened before `older_than` that never closed, returning each one's
-- whole hold with an `expire` leg. Rows another transaction holds are skipped, not waited for.
CREATE FUNCTION credit_expire_runs(farm uuid, older_than timestamptz)
  RETURNS TABLE (runs bigint, refunded bigint)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  PERFORM credit_require_tenant(farm);
  RETURN QUERY
  WITH stale AS (
    SELECT r.id FROM ai_runs r
     WHERE r.farm_id = farm AND r.status = 'reserved' AND r.created_at < older_than
     ORDER BY r.id
     FOR UPDATE SKIP LOCKED),
  closed AS (
    UPDATE ai_runs r
       SET status = 'expired', credits_charged = 0, finished_at = now(),
           error = 'reservation expired: the run never settled'
      FROM stale WHERE r.id = stale.id AND r.status = 'reserved'
    RETURNING r.id, r.credits_reserved),
  total AS (SELECT sum(c.credits_reserved) AS refund FROM closed c),
  credit AS (
    UPDATE farms f SET credit_balance = f.credit_balance + t.refund
      FROM total t WHERE f.id = farm AND t.refund IS NOT NULL
    RETURNING f.credit_balance, t.refund),
  legs AS (
    INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor, reason)
    SELECT farm, 'expire', c.credits_reserved,
           k.credit_balance - k.refund + sum(c.credits_reserved) OVER (ORDER BY c.id),
           c.id, 'reconcile-credits', 'reservation older than the longest possible run'
      FROM closed c CROSS JOIN credit k
     ORDER BY c.id
    RETURNING delta)
  SELECT count(*), coalesce(sum(delta), 0)::bigint FROM legs;
END $$;

DO $$
DECLARE
  fn text;
BEGIN
  FOREACH fn IN ARRAY ARRAY[
    'credit_open_run(uuid, text, text, text, text, bigint)',
    'credit_hold(uuid, uuid, bigint)',
    'credit_settle_run(uuid, uuid, boolean, bigint, integer, integer, integer, text, text)',
    'credit_expire_runs(uuid, timestamptz)'] LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO farmops_app', fn);
  END LOOP;
END $$;
