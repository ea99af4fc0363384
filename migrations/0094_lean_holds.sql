-- Fewer statements per hold under the farm row's lock (#14's benchmark: a hold on the hot farm).
--
-- A hold runs its door, the lot helpers, the evidence chain and, at commit, the checks, all
-- while it holds the farm row; on one busy farm every other hold waits for that. Measured with
-- track_functions over 1,500 committed holds on one farm (after 0093), the largest shares were
-- the lot helper's one statement (a window query, an update and an insert planned together,
-- about 230 µs), the commit-time checks (three runs of check_balance_matches_ledger and two of
-- ai_run_check_legs per hold, three and two queries each) and global_farm_id (a SQL function
-- the farms CHECK constraint evaluates on every balance update, about 30 µs).
--
-- - credit_take_from_lots and credit_return_to_lots walk the farm's lots in the same order
--   (spend: priority, soonest expiry, oldest; return: latest first) one lot at a time: a hold
--   is nearly always paid from one lot, so one indexed read, one update, one insert.
-- - check_balance_matches_ledger reads the balance, the last ledger row and the open lots in one
--   query; ai_run_check_legs reads the run and its legs in one query. Same conditions, same
--   errors.
-- - global_farm_id is PL/pgSQL (its value is unchanged; PostgreSQL still folds it to a
--   constant where it plans it).
--
-- Replace-only: the same names, signatures, results, volatility, owner and grants; 0092's
-- search_path.

CREATE OR REPLACE FUNCTION credit_take_from_lots(farm uuid, run uuid, credits bigint)
  RETURNS bigint LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
  lot   record;
  taken bigint := 0;
  take  bigint;
BEGIN
  FOR lot IN
    SELECT l.id, l.remaining FROM credit_lots l
     WHERE l.farm_id = farm AND l.closed_at IS NULL AND l.revoked_at IS NULL AND l.remaining > 0
       AND l.effective_at <= now() AND coalesce(l.expires_at, 'infinity') > now()
     ORDER BY l.priority, l.expires_at NULLS LAST, l.id
  LOOP
    EXIT WHEN taken >= credits;
    take := least(lot.remaining, credits - taken);
    UPDATE credit_lots l SET remaining = l.remaining - take WHERE l.id = lot.id;
    INSERT INTO credit_lot_moves (farm_id, lot_id, ai_run_id, kind, delta)
    VALUES (farm, lot.id, run, CASE WHEN run IS NULL THEN 'adjust' ELSE 'hold' END, -take);
    taken := taken + take;
  END LOOP;
  RETURN taken;
END $$;

CREATE OR REPLACE FUNCTION credit_return_to_lots(farm uuid, run uuid, credits bigint)
  RETURNS bigint LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
  lot   record;
  given bigint := 0;
  give  bigint;
BEGIN
  FOR lot IN
    SELECT m.lot_id, -sum(m.delta) AS held
      FROM credit_lot_moves m JOIN credit_lots l ON l.id = m.lot_id
     WHERE m.ai_run_id = run AND m.farm_id = farm
     GROUP BY m.lot_id, l.priority, l.expires_at
    HAVING -sum(m.delta) > 0
     ORDER BY l.priority DESC, l.expires_at DESC NULLS FIRST, m.lot_id DESC
  LOOP
    EXIT WHEN given >= credits;
    give := least(lot.held, credits - given);
    UPDATE credit_lots l SET remaining = l.remaining + give WHERE l.id = lot.lot_id;
    INSERT INTO credit_lot_moves (farm_id, lot_id, ai_run_id, kind, delta)
    VALUES (farm, lot.lot_id, run, 'return', give);
    given := given + give;
  END LOOP;
  RETURN given;
END $$;

CREATE OR REPLACE FUNCTION check_balance_matches_ledger() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  farm         uuid;
  last_balance bigint;
  current      bigint;
  in_lots      bigint;
BEGIN
  IF TG_TABLE_NAME = 'farms' THEN
    farm := NEW.id;
  ELSE
    farm := NEW.farm_id;
  END IF;
  SELECT f.credit_balance,
         (SELECT l.balance_after FROM credit_ledger l WHERE l.farm_id = farm ORDER BY l.id DESC LIMIT 1),
         (SELECT coalesce(sum(c.remaining), 0) FROM credit_lots c
           WHERE c.farm_id = farm AND c.closed_at IS NULL)
    INTO current, last_balance, in_lots
    FROM farms f WHERE f.id = farm;
  IF current IS DISTINCT FROM coalesce(last_balance, 0) THEN
    RAISE EXCEPTION 'farm % balance % does not match its ledger (%): a balance changes only with a ledger row',
      farm, current, coalesce(last_balance, 0)
      USING ERRCODE = 'check_violation';
  END IF;
  IF current IS DISTINCT FROM in_lots THEN
    RAISE EXCEPTION 'farm % balance % does not match its credit lots (%): credits live in lots',
      farm, current, in_lots
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION ai_run_check_legs() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  run      uuid;
  status   text;
  reserved bigint;
  charged  bigint;
  held     bigint := 0;
  holds    bigint := 0;
  settled  bigint := 0;
  settles  bigint := 0;
  expired  bigint := 0;
  expires  bigint := 0;
BEGIN
  IF TG_TABLE_NAME = 'ai_runs' THEN
    run := NEW.id;
  ELSE
    run := NEW.ai_run_id;
  END IF;
  SELECT r.status, r.credits_reserved, r.credits_charged,
         s.held, s.holds, s.settled, s.settles, s.expired, s.expires
    INTO status, reserved, charged, held, holds, settled, settles, expired, expires
    FROM ai_runs r,
         LATERAL (SELECT coalesce(-sum(l.delta) FILTER (WHERE l.entry_type = 'reserve'), 0) AS held,
                         count(*) FILTER (WHERE l.entry_type = 'reserve') AS holds,
                         coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'settle'), 0) AS settled,
                         count(*) FILTER (WHERE l.entry_type = 'settle') AS settles,
                         coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'expire'), 0) AS expired,
                         count(*) FILTER (WHERE l.entry_type = 'expire') AS expires
                    FROM credit_ledger l
                   WHERE l.farm_id = r.farm_id AND l.ai_run_id = r.id) s
   WHERE r.id = run;
  IF NOT FOUND THEN
    held := 0; holds := 0; settled := 0; settles := 0; expired := 0; expires := 0;
  END IF;
  IF holds = 0 OR held <> reserved THEN
    RAISE EXCEPTION 'ai run % holds % but its % hold legs add up to %',
      run, reserved, holds, held USING ERRCODE = 'check_violation';
  END IF;
  IF (status = 'reserved' AND settles + expires <> 0)
     OR (status IN ('succeeded', 'failed')
         AND (settles <> 1 OR expires <> 0 OR settled <> reserved - charged))
     OR (status = 'expired' AND (expires <> 1 OR settles <> 0 OR expired <> reserved)) THEN
    RAISE EXCEPTION 'ai run % (%, held %, charged %) disagrees with its closing legs (settled % in %, expired % in %)',
      run, status, reserved, charged, settled, settles, expired, expires
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION global_farm_id() RETURNS uuid
  LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  RETURN '00000000-0000-0000-0000-000000000000'::uuid;
END $$;
