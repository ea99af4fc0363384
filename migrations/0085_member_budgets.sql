-- Member budgets (issue 18, part 1): an owner or a manager caps what one member's AI runs
-- may take per day and/or per month, in credits; the database refuses the hold that would
-- pass a cap, in the same statement that would take it.
--
-- The rule (one, exact): a run counts in the window (the day and the month, in the farm's
-- time zone) in which it was OPENED (`ai_runs.created_at`): at its whole hold while it is
-- open, at its charge once it is settled (an expired run charges 0). So a turn held before
-- midnight and settled after counts on the day it was opened, its top-ups too; a settle's
-- refund gives the member's budget back the moment it gives the farm its credits; a window
-- is a sum over the runs opened in it (index `ai_runs_member_window`), so a reset is only the
-- next window's sum starting at zero: nothing is carried, lost or counted twice.
--
-- A hold is refused when the member's charged plus held credits in the run's window, plus
-- the new hold, would pass the cap. Both run doors (credit_open_run, credit_hold) lock the
-- farm row before they decide, so the window sum they read after the lock is serialized per
-- farm: concurrent holds by one member cannot all fit under the cap.
--
-- The doors' lot logic is 0080's, unchanged. Their result gains the budget refusal's details
-- (budget_window, budget_cap, budget_spent, budget_held, budget_resets_at: null unless the
-- member's budget refused the hold); `balance` stays the farm's spendable credits. Adding
-- output columns means DROP + CREATE (and the grants again); the previous code selects its
-- columns by name and keeps working (a budget refusal looks to it like a refusal for credits).
--
-- Caps are whole credits from 0 to 1,000,000,000 (the largest a farm's balance is expected to
-- reach; a cap above it would never bind), set only through `set_member_budget` (the app:
-- owners set any member's, managers a worker's or a viewer's) or `write_member_budget` (the
-- operator CLI, as the owner role); the act is recorded in farm_events either way. The
-- application role reads budgets and cannot write them.
--
-- Expand: a new table, index and functions; the two doors keep their signatures and the
-- columns they returned.

CREATE TABLE member_budgets (
  farm_id      uuid NOT NULL,
  user_id      text NOT NULL,
  daily_cap    bigint CHECK (daily_cap BETWEEN 0 AND 1000000000),
  monthly_cap  bigint CHECK (monthly_cap BETWEEN 0 AND 1000000000),
  set_by       text NOT NULL CHECK (length(set_by) BETWEEN 1 AND 200),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (farm_id, user_id),
  -- a removed member's budget goes with their membership
  FOREIGN KEY (farm_id, user_id) REFERENCES farm_members (farm_id, user_id) ON DELETE CASCADE,
  -- no caps is no row
  CHECK (daily_cap IS NOT NULL OR monthly_cap IS NOT NULL)
);
SELECT enable_tenant_rls('member_budgets', 'SELECT');

-- The window sums: one member's runs opened in a window.
CREATE INDEX ai_runs_member_window ON ai_runs (farm_id, user_id, created_at)
  WHERE user_id IS NOT NULL;

ALTER TABLE farm_events DROP CONSTRAINT farm_events_kind_check;
ALTER TABLE farm_events ADD CONSTRAINT farm_events_kind_check
  CHECK (kind IN ('autonomy_changed', 'memory_forgotten', 'member_added', 'member_role_changed',
                  'member_removed', 'member_budget_set'));

-- The window of kind `unit` ('daily' or 'monthly') containing `at`, in time zone `zone`:
-- [starts_at, resets_at). A zone PostgreSQL does not know counts as UTC.
CREATE FUNCTION budget_window(zone text, unit text, at timestamptz)
  RETURNS TABLE (starts_at timestamptz, resets_at timestamptz)
  LANGUAGE plpgsql STABLE SET search_path = public AS $$
DECLARE
  field text := CASE unit WHEN 'daily' THEN 'day' WHEN 'monthly' THEN 'month' END;
  local timestamp;
BEGIN
  zone := coalesce(zone, 'UTC');
  IF field IS NULL THEN
    RAISE EXCEPTION 'unknown budget window %', unit USING ERRCODE = 'invalid_parameter_value';
  END IF;
  BEGIN
    local := date_trunc(field, at AT TIME ZONE zone);
  EXCEPTION WHEN invalid_parameter_value THEN
    zone := 'UTC';
    local := date_trunc(field, at AT TIME ZONE zone);
  END;
  starts_at := local AT TIME ZONE zone;
  resets_at := (local + ('1 ' || field)::interval) AT TIME ZONE zone;
  RETURN NEXT;
END $$;

-- What one member's runs opened in [since, until) count: charged (closed runs) and held
-- (open runs).
CREATE FUNCTION member_window_usage(farm uuid, member text, since timestamptz, until timestamptz)
  RETURNS TABLE (spent bigint, held bigint)
  LANGUAGE sql STABLE SET search_path = public AS $$
  SELECT coalesce(sum(r.credits_charged) FILTER (WHERE r.status <> 'reserved'), 0)::bigint,
         coalesce(sum(r.credits_reserved) FILTER (WHERE r.status = 'reserved'), 0)::bigint
    FROM ai_runs r
   WHERE r.farm_id = farm AND r.user_id = member AND r.created_at >= since AND r.created_at < until
$$;

-- The first of the member's caps (daily, then monthly) that `credits` more, for a run opened
-- at `opened`, would pass: its window, cap, what is spent and held in it and when it resets.
-- No row: no cap would be passed. The caller holds the farm row.
CREATE FUNCTION member_budget_refusal(farm uuid, member text, opened timestamptz, credits bigint)
  RETURNS TABLE (budget_window text, budget_cap bigint, budget_spent bigint, budget_held bigint,
                 budget_resets_at timestamptz)
  LANGUAGE plpgsql STABLE SET search_path = public AS $$
DECLARE
  b    member_budgets%ROWTYPE;
  zone text;
  w    record;
  win  record;
  used record;
BEGIN
  IF member IS NULL THEN
    RETURN;
  END IF;
  SELECT * INTO b FROM member_budgets m WHERE m.farm_id = farm AND m.user_id = member;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  SELECT f.time_zone INTO zone FROM farms f WHERE f.id = farm;
  FOR w IN SELECT * FROM (VALUES (1, 'daily', b.daily_cap), (2, 'monthly', b.monthly_cap)) v (n, unit, cap)
            WHERE v.cap IS NOT NULL ORDER BY v.n LOOP
    SELECT * INTO win FROM budget_window(zone, w.unit, opened);
    SELECT * INTO used FROM member_window_usage(farm, member, win.starts_at, win.resets_at);
    IF used.spent + used.held + credits > w.cap THEN
      RETURN QUERY SELECT w.unit::text, w.cap::bigint, used.spent, used.held, win.resets_at;
      RETURN;
    END IF;
  END LOOP;
END $$;

REVOKE ALL ON FUNCTION member_budget_refusal(uuid, text, timestamptz, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION member_window_usage(uuid, text, timestamptz, timestamptz) FROM PUBLIC;
-- the usage route computes its windows with the same function
GRANT EXECUTE ON FUNCTION budget_window(text, text, timestamptz) TO farmops_app;

-- ---------------------------------------------------------------- the run doors, budgeted

DROP FUNCTION credit_open_run(uuid, text, text, text, text, bigint);
DROP FUNCTION credit_hold(uuid, uuid, bigint);

-- Opens a run holding `credits` for its first call, taken from the farm's spendable lots.
-- Refused: run_id is null, balance is what is spendable now, and, when the member's budget
-- refused it, the budget_* columns say which window, its cap, what is spent and held in it
-- and when it resets.
CREATE FUNCTION credit_open_run(farm uuid, run_feature text, run_model text, run_user text,
                                summary text, credits bigint)
  RETURNS TABLE (run_id uuid, held bigint, balance bigint, budget_window text, budget_cap bigint,
                 budget_spent bigint, budget_held bigint, budget_resets_at timestamptz)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
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
END $$;

-- Tops up an open run's hold by `credits`. Refused: held is null, balance is what is
-- spendable now, and the budget_* columns as for credit_open_run (the window is the one the
-- run was opened in). A run that is not open on this farm is an error.
CREATE FUNCTION credit_hold(farm uuid, run uuid, credits bigint)
  RETURNS TABLE (held bigint, balance bigint, budget_window text, budget_cap bigint,
                 budget_spent bigint, budget_held bigint, budget_resets_at timestamptz)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
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
END $$;

REVOKE ALL ON FUNCTION credit_open_run(uuid, text, text, text, text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION credit_hold(uuid, uuid, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit_open_run(uuid, text, text, text, text, bigint) TO farmops_app;
GRANT EXECUTE ON FUNCTION credit_hold(uuid, uuid, bigint) TO farmops_app;

-- ---------------------------------------------------------------- the doors to budgets

-- Writes a member's caps on `farm` and records the act (the owner role's: the operator CLI
-- calls it directly, as `actor`; the app reaches it only through set_member_budget below).
-- `set_daily` / `set_monthly` say which cap the call changes (a null value then removes it);
-- the other keeps its value. Caps are whole credits from 0 to 1,000,000,000. Locks the
-- member's row, so two changes serialize; records the act (before, after) in farm_events
-- when something changed. Returns the member's caps.
CREATE FUNCTION write_member_budget(farm uuid, actor text, member text, set_daily boolean,
                                    daily bigint, set_monthly boolean, monthly bigint)
  RETURNS jsonb LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
  old member_budgets%ROWTYPE;
  new_daily bigint;
  new_monthly bigint;
  before jsonb;
  after jsonb;
BEGIN
  IF NOT (coalesce(set_daily, false) OR coalesce(set_monthly, false)) THEN
    RAISE EXCEPTION 'name a daily or a monthly cap (null removes it)' USING ERRCODE = 'FO422', DETAIL = 'body';
  END IF;
  IF set_daily AND daily IS NOT NULL AND daily NOT BETWEEN 0 AND 1000000000 THEN
    RAISE EXCEPTION 'a cap is a whole number of credits from 0 to 1000000000' USING ERRCODE = 'FO422', DETAIL = 'daily';
  END IF;
  IF set_monthly AND monthly IS NOT NULL AND monthly NOT BETWEEN 0 AND 1000000000 THEN
    RAISE EXCEPTION 'a cap is a whole number of credits from 0 to 1000000000' USING ERRCODE = 'FO422', DETAIL = 'monthly';
  END IF;
  PERFORM 1 FROM farm_members m WHERE m.farm_id = farm AND m.user_id = member FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'member not found' USING ERRCODE = 'FO404', DETAIL = 'member';
  END IF;
  SELECT * INTO old FROM member_budgets b WHERE b.farm_id = farm AND b.user_id = member;
  new_daily := CASE WHEN set_daily THEN daily ELSE old.daily_cap END;
  new_monthly := CASE WHEN set_monthly THEN monthly ELSE old.monthly_cap END;
  before := jsonb_build_object('daily', old.daily_cap, 'monthly', old.monthly_cap);
  after := jsonb_build_object('daily', new_daily, 'monthly', new_monthly);
  IF new_daily IS NULL AND new_monthly IS NULL THEN
    DELETE FROM member_budgets b WHERE b.farm_id = farm AND b.user_id = member;
  ELSE
    INSERT INTO member_budgets (farm_id, user_id, daily_cap, monthly_cap, set_by)
    VALUES (farm, member, new_daily, new_monthly, actor)
    ON CONFLICT (farm_id, user_id) DO UPDATE
       SET daily_cap = EXCLUDED.daily_cap, monthly_cap = EXCLUDED.monthly_cap,
           set_by = EXCLUDED.set_by, updated_at = now();
  END IF;
  IF before IS DISTINCT FROM after THEN
    INSERT INTO farm_events (farm_id, kind, actor, subject, details)
    VALUES (farm, 'member_budget_set', actor, member, jsonb_build_object('before', before, 'after', after));
  END IF;
  RETURN jsonb_build_object('user_id', member, 'daily', new_daily, 'monthly', new_monthly);
END $$;
REVOKE ALL ON FUNCTION write_member_budget(uuid, text, text, boolean, bigint, boolean, bigint) FROM PUBLIC;

-- The app's door: the caller (`actor`) must be an owner (any member) or a manager (a worker's
-- or a viewer's budget) of the tenant farm; then write_member_budget.
CREATE FUNCTION set_member_budget(actor text, member text, set_daily boolean, daily bigint,
                                  set_monthly boolean, monthly bigint)
  RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  farm uuid := current_farm_id();
  actor_role text := tenant_role_of(actor);
  member_role text;
BEGIN
  IF NOT actor_role IN ('owner', 'manager') THEN
    RAISE EXCEPTION 'only an owner or a manager may set a member''s budget' USING ERRCODE = 'FO403';
  END IF;
  SELECT role INTO member_role FROM farm_members
   WHERE farm_id = farm AND user_id = member FOR NO KEY UPDATE;
  IF member_role IS NULL THEN
    RAISE EXCEPTION 'member not found' USING ERRCODE = 'FO404', DETAIL = 'member';
  END IF;
  IF actor_role = 'manager' AND NOT member_role IN ('worker', 'viewer') THEN
    RAISE EXCEPTION 'a manager may set a worker''s or a viewer''s budget, not a %''s', member_role
      USING ERRCODE = 'FO403';
  END IF;
  RETURN write_member_budget(farm, actor, member, set_daily, daily, set_monthly, monthly);
END $$;
REVOKE ALL ON FUNCTION set_member_budget(text, text, boolean, bigint, boolean, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION set_member_budget(text, text, boolean, bigint, boolean, bigint) TO farmops_app;
