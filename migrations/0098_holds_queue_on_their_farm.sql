-- A farm's holds queue on one lock of their own before they lock the farm row (#14's benchmark:
-- a hold on the hot farm, 32 and 64 clients).
--
-- credit_open_run and credit_hold locked the farm row first (FOR NO KEY UPDATE), and on a busy
-- farm every other hold waited on that row. Each hold leaves the row in a new version, and a
-- waiter on a row lock that finds the row updated follows it to the new version and waits again,
-- so the whole queue is shuffled at every hold.
--
-- Now a hold first takes a transaction-scoped advisory lock named after the farm
-- (`credit_holds:<farm>`, the convention of 0070 and 0081), then the row lock as before: the
-- holds of one farm wait in the lock manager's queue, which wakes one at a time, and the row
-- lock is then rarely contended. Measured with pgbench on the local cluster, one farm, the app's
-- pipeline (BEGIN, tenant, credit_open_run, COMMIT), alternating two databases 3 seconds at a
-- time: 32 clients 395 → 489 holds/s, 64 clients 223 → 318 (medians of 3 pairs); 1 client
-- unchanged.
--
-- What it does not change: the row lock is still what serialises a farm's balance, ledger, lots
-- and chain, and every check is the same. Settles, expiries, grants and decisions do not take the
-- advisory lock: they often run after other writes that already locked the farm row (a record's
-- chain entry), and taking it there could deadlock with a hold that holds it and waits for the
-- row. A hold takes it before anything else in its transaction touches the farm (the app opens
-- and tops up runs in transactions of their own), so the lock order is always advisory, then row.
-- A transaction that locked the farm row and then opens a run can deadlock with another hold;
-- PostgreSQL detects it and aborts one (40P01), and nothing is written.
--
-- Replace-only: the same names, signatures, results, owner, rights and search_path; the only new
-- statement is the advisory lock.

CREATE OR REPLACE FUNCTION credit_open_run(farm uuid, run_feature text, run_model text, run_user text, summary text, credits bigint)
 RETURNS TABLE(run_id uuid, held bigint, balance bigint, budget_window text, budget_cap bigint, budget_spent bigint, budget_held bigint, budget_resets_at timestamp with time zone)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  bal       bigint;
  spendable bigint;
  rid       uuid;
  refusal   record;
BEGIN
  PERFORM credit_require_tenant(farm);
  IF credits IS NULL OR credits <= 0 THEN
    RAISE EXCEPTION 'a hold must be positive, not %', credits USING ERRCODE = 'check_violation';
  END IF;
  -- queue on the farm's hold lock first (see the header), then lock the row
  PERFORM pg_advisory_xact_lock(hashtextextended('credit_holds:' || farm::text, 0));
  PERFORM 1 FROM farms f WHERE f.id = farm FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RETURN;                                -- no such farm: no row
  END IF;
  spendable := credit_spendable(farm);
  SELECT * INTO refusal FROM member_budget_refusal(farm, run_user, now(), credits);
  IF refusal.budget_window IS NOT NULL THEN
    RETURN QUERY SELECT NULL::uuid, 0::bigint, spendable, refusal.budget_window,
                        refusal.budget_cap, refusal.budget_spent, refusal.budget_held,
                        refusal.budget_resets_at;
    RETURN;
  END IF;
  IF spendable < credits THEN
    RETURN QUERY SELECT NULL::uuid, 0::bigint, spendable, NULL::text, NULL::bigint,
                        NULL::bigint, NULL::bigint, NULL::timestamptz;
    RETURN;
  END IF;
  UPDATE farms f SET credit_balance = f.credit_balance - credits
   WHERE f.id = farm
  RETURNING f.credit_balance INTO bal;
  INSERT INTO ai_runs (farm_id, feature, model, user_id, credits_reserved, request_summary)
  VALUES (farm, run_feature, run_model, run_user, credits, summary)
  RETURNING id INTO rid;
  PERFORM credit_take_from_lots(farm, rid, credits);
  INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor)
  VALUES (farm, 'reserve', -credits, bal, rid, coalesce(run_user, 'system'));
  RETURN QUERY SELECT rid, credits, bal, NULL::text, NULL::bigint, NULL::bigint, NULL::bigint,
                      NULL::timestamptz;
END $function$;

CREATE OR REPLACE FUNCTION credit_hold(farm uuid, run uuid, credits bigint)
 RETURNS TABLE(held bigint, balance bigint, budget_window text, budget_cap bigint, budget_spent bigint, budget_held bigint, budget_resets_at timestamp with time zone)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  total     bigint;
  bal       bigint;
  spendable bigint;
  opened    record;
  refusal   record;
BEGIN
  PERFORM credit_require_tenant(farm);
  IF credits IS NULL OR credits <= 0 THEN
    RAISE EXCEPTION 'a hold must be positive, not %', credits USING ERRCODE = 'check_violation';
  END IF;
  -- queue on the farm's hold lock first (see the header), then lock the row
  PERFORM pg_advisory_xact_lock(hashtextextended('credit_holds:' || farm::text, 0));
  PERFORM 1 FROM farms f WHERE f.id = farm FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RETURN;                                -- no such farm: no row
  END IF;
  spendable := credit_spendable(farm);
  SELECT r.user_id, r.created_at INTO opened FROM ai_runs r
   WHERE r.farm_id = farm AND r.id = run AND r.status = 'reserved';
  IF FOUND THEN
    SELECT * INTO refusal FROM member_budget_refusal(farm, opened.user_id, opened.created_at, credits);
    IF refusal.budget_window IS NOT NULL THEN
      RETURN QUERY SELECT NULL::bigint, spendable, refusal.budget_window, refusal.budget_cap,
                          refusal.budget_spent, refusal.budget_held, refusal.budget_resets_at;
      RETURN;
    END IF;
  END IF;
  IF spendable < credits THEN
    RETURN QUERY SELECT NULL::bigint, spendable, NULL::text, NULL::bigint, NULL::bigint,
                        NULL::bigint, NULL::timestamptz;
    RETURN;
  END IF;
  UPDATE ai_runs r SET credits_reserved = r.credits_reserved + credits
   WHERE r.farm_id = farm AND r.id = run AND r.status = 'reserved'
  RETURNING r.credits_reserved INTO total;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'ai run % is not open on farm %', run, farm
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE farms f SET credit_balance = f.credit_balance - credits
   WHERE f.id = farm
  RETURNING f.credit_balance INTO bal;
  PERFORM credit_take_from_lots(farm, run, credits);
  INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor)
  VALUES (farm, 'reserve', -credits, bal, run, 'system');
  RETURN QUERY SELECT total, bal, NULL::text, NULL::bigint, NULL::bigint, NULL::bigint,
                      NULL::timestamptz;
END $function$;
