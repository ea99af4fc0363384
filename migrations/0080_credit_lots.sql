-- Grants as lots: credits a farm owns come in lots (a paid pack, a promotion, an operator
-- grant), each with a category, a priority, when it takes effect and when it expires. A hold
-- spends lots in order: priority (lower first), then soonest expiry (no expiry last), then
-- oldest; a settle returns the unspent part of a hold to the lots it came from, latest in
-- that order first, so what a run is charged comes out of the lots spent first.
--
-- The database enforces, whoever writes:
--   * 0 <= remaining <= amount on every lot (column checks);
--   * at commit, for every farm whose balance or lots changed:
--       farms.credit_balance = sum(remaining) of its lots      (closed lots hold 0);
--   * a lot's remaining goes down only (a) by a hold, while the lot is effective and not
--     expired (effective_at <= now() < expires_at) and not revoked or closed, or (b) when the
--     lot is revoked (a refund claws it back) or closed (expired, revoked with nothing held);
--     a closed lot never changes again; the lot's terms never change;
--   * the same idempotency key never grants twice on a farm (unique);
--   * every change of a lot's remaining has a row in credit_lot_moves (append-only), so
--     remaining = sum of the lot's moves (checked by the operator's audit).
--
-- Expiry (reconcile, credit_close_lots): a lot past expires_at is no longer spent from. It is
-- closed, with one `expire_grant` leg taking its remaining, once no open run holds credits
-- from it: what an open run holds from an expiring lot stays the run's; if the run settles it
-- returns to the lot and the closing leg takes it; if the run is abandoned, the expiry of the
-- run (same reconcile pass, earlier) returns it first. So each lot is expired exactly once,
-- never below zero, and never while a hold from it is open.
--
-- A refund (claw-back, payments) revokes a lot: its remaining is taken now with an `adjust`
-- leg; what open runs hold from it is the shortfall at that moment; if some of it comes back
-- at settle, reconcile's closing takes it with a further `adjust` leg.
--
-- Sequencing: every writer of a farm's lots takes the farm row (the hold, settle and expire
-- functions update its balance; the others lock it first), so lots are never raced.
--
-- Balances that exist when this migration runs are carried into one operator lot per farm
-- (paid, priority 50, no expiry, effective since the farm was created) that also covers what
-- open runs hold, so their settles return credits to it.

CREATE TABLE credit_lots (
  farm_id          uuid NOT NULL REFERENCES farms (id),
  id               bigint GENERATED ALWAYS AS IDENTITY,
  category         text NOT NULL CHECK (category IN ('paid', 'promotional')),
  priority         integer NOT NULL CHECK (priority BETWEEN 0 AND 100),
  amount           bigint NOT NULL CHECK (amount > 0),
  remaining        bigint NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
  effective_at     timestamptz NOT NULL,
  expires_at       timestamptz CHECK (expires_at > effective_at),
  source           text NOT NULL CHECK (source IN ('operator', 'payment', 'promotion')),
  idempotency_key  text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
  actor            text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
  reason           text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
  created_at       timestamptz NOT NULL DEFAULT now(),
  revoked_at       timestamptz,              -- a refund clawed it back
  closed_at        timestamptz,              -- expired or revoked with nothing left or held
  PRIMARY KEY (id),
  UNIQUE (farm_id, id),
  UNIQUE (farm_id, idempotency_key),
  CHECK (isfinite(effective_at) AND (expires_at IS NULL OR isfinite(expires_at))),
  CHECK (closed_at IS NULL OR remaining = 0),
  CHECK (closed_at IS NULL OR revoked_at IS NOT NULL OR expires_at <= closed_at)
);
-- the lots a hold can spend, in spend order
CREATE INDEX credit_lots_open ON credit_lots (farm_id, priority, expires_at, id) WHERE closed_at IS NULL;

-- Every change of a lot's remaining, with the run it was for (holds and their returns).
CREATE TABLE credit_lot_moves (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  farm_id     uuid NOT NULL,
  lot_id      bigint NOT NULL,
  ai_run_id   uuid,
  kind        text NOT NULL CHECK (kind IN ('grant', 'carried', 'hold', 'return', 'expire_grant',
                                            'revoke', 'adjust')),
  delta       bigint NOT NULL CHECK (delta <> 0),
  created_at  timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (farm_id, lot_id) REFERENCES credit_lots (farm_id, id),
  FOREIGN KEY (farm_id, ai_run_id) REFERENCES ai_runs (farm_id, id),
  CHECK ((kind IN ('hold', 'return')) = (ai_run_id IS NOT NULL)),
  CHECK (CASE kind WHEN 'grant' THEN delta > 0 WHEN 'carried' THEN delta > 0
                   WHEN 'return' THEN delta > 0 WHEN 'adjust' THEN true ELSE delta < 0 END)
);
CREATE INDEX credit_lot_moves_run ON credit_lot_moves (ai_run_id, lot_id) WHERE ai_run_id IS NOT NULL;
CREATE INDEX credit_lot_moves_lot ON credit_lot_moves (lot_id);
CREATE TRIGGER credit_lot_moves_append_only BEFORE UPDATE OR DELETE ON credit_lot_moves
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER credit_lot_moves_no_truncate BEFORE TRUNCATE ON credit_lot_moves
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER credit_lots_no_delete BEFORE DELETE ON credit_lots
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER credit_lots_no_truncate BEFORE TRUNCATE ON credit_lots
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- A lot's terms never change; it is spent only while effective, unexpired and not revoked;
-- revoked and closed once; a closed lot is final.
CREATE FUNCTION credit_lots_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.closed_at IS NOT NULL THEN
    RAISE EXCEPTION 'credit lot % is closed and can no longer change', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  IF (NEW.farm_id, NEW.id, NEW.category, NEW.priority, NEW.amount, NEW.effective_at,
      NEW.source, NEW.idempotency_key, NEW.actor, NEW.reason, NEW.created_at)
     IS DISTINCT FROM
     (OLD.farm_id, OLD.id, OLD.category, OLD.priority, OLD.amount, OLD.effective_at,
      OLD.source, OLD.idempotency_key, OLD.actor, OLD.reason, OLD.created_at)
     OR NEW.expires_at IS DISTINCT FROM OLD.expires_at THEN
    RAISE EXCEPTION 'credit lot %: its terms are fixed', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
    RAISE EXCEPTION 'credit lot % is already revoked', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.remaining < OLD.remaining AND NEW.closed_at IS NULL AND NEW.revoked_at IS NULL
     AND (now() < OLD.effective_at OR now() >= coalesce(OLD.expires_at, 'infinity')) THEN
    RAISE EXCEPTION 'credit lot % cannot be spent outside % .. %', OLD.id, OLD.effective_at,
      coalesce(OLD.expires_at::text, 'no expiry') USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.remaining < OLD.remaining AND OLD.revoked_at IS NOT NULL AND NEW.closed_at IS NULL THEN
    RAISE EXCEPTION 'credit lot % is revoked: nothing more is spent from it', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER credit_lots_guard BEFORE UPDATE ON credit_lots
  FOR EACH ROW EXECUTE FUNCTION credit_lots_guard();

-- Ledger legs: grant, adjust and expire_grant legs name their lot; a lot expires once.
ALTER TABLE credit_ledger ADD COLUMN lot_id bigint;
ALTER TABLE credit_ledger ADD FOREIGN KEY (farm_id, lot_id) REFERENCES credit_lots (farm_id, id);
ALTER TABLE credit_ledger DROP CONSTRAINT credit_ledger_entry_type_check;
ALTER TABLE credit_ledger ADD CONSTRAINT credit_ledger_entry_type_check
  CHECK (entry_type IN ('grant', 'reserve', 'settle', 'expire', 'adjust', 'expire_grant'));
ALTER TABLE credit_ledger DROP CONSTRAINT credit_ledger_check;
ALTER TABLE credit_ledger ADD CONSTRAINT credit_ledger_leg_shape
  CHECK (CASE entry_type
           WHEN 'grant'        THEN delta > 0  AND ai_run_id IS NULL AND reason IS NOT NULL AND actor IS NOT NULL
           WHEN 'adjust'       THEN delta <> 0 AND ai_run_id IS NULL AND reason IS NOT NULL AND actor IS NOT NULL
           WHEN 'reserve'      THEN delta < 0  AND ai_run_id IS NOT NULL AND lot_id IS NULL
           WHEN 'settle'       THEN delta >= 0 AND ai_run_id IS NOT NULL AND lot_id IS NULL
           WHEN 'expire'       THEN delta > 0  AND ai_run_id IS NOT NULL AND lot_id IS NULL
           WHEN 'expire_grant' THEN delta < 0  AND ai_run_id IS NULL AND lot_id IS NOT NULL
         END);
-- new legs only (NOT VALID): grant legs written before this migration have no lot
ALTER TABLE credit_ledger ADD CONSTRAINT credit_ledger_grant_names_lot
  CHECK (entry_type <> 'grant' OR lot_id IS NOT NULL) NOT VALID;
CREATE UNIQUE INDEX credit_ledger_one_expire_grant ON credit_ledger (lot_id) WHERE entry_type = 'expire_grant';
CREATE UNIQUE INDEX credit_ledger_one_grant_per_lot ON credit_ledger (lot_id) WHERE entry_type = 'grant';

SELECT enable_tenant_rls('credit_lots', 'SELECT');
SELECT enable_tenant_rls('credit_lot_moves', 'SELECT');

-- At commit: the farm's balance is the sum of its lots (and, as before, its last ledger row).
CREATE OR REPLACE FUNCTION check_balance_matches_ledger() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
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
  SELECT credit_balance INTO current FROM farms WHERE id = farm;
  SELECT balance_after INTO last_balance FROM credit_ledger WHERE farm_id = farm ORDER BY id DESC LIMIT 1;
  IF current IS DISTINCT FROM coalesce(last_balance, 0) THEN
    RAISE EXCEPTION 'farm % balance % does not match its ledger (%): a balance changes only with a ledger row',
      farm, current, coalesce(last_balance, 0)
      USING ERRCODE = 'check_violation';
  END IF;
  SELECT coalesce(sum(remaining), 0) INTO in_lots FROM credit_lots
   WHERE farm_id = farm AND closed_at IS NULL;
  IF current IS DISTINCT FROM in_lots THEN
    RAISE EXCEPTION 'farm % balance % does not match its credit lots (%): credits live in lots',
      farm, current, in_lots
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER credit_lots_match_farm AFTER INSERT OR UPDATE OF remaining ON credit_lots
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION check_balance_matches_ledger();

-- Carry today's balances (and what open runs hold) into one operator lot per farm.
WITH held AS (
  SELECT farm_id, sum(credits_reserved) AS credits FROM ai_runs
   WHERE status = 'reserved' GROUP BY farm_id),
carried AS (
  INSERT INTO credit_lots (farm_id, category, priority, amount, remaining, effective_at,
                           source, idempotency_key, actor, reason)
  SELECT f.id, 'paid', 50, f.credit_balance + coalesce(h.credits, 0), f.credit_balance,
         f.created_at, 'operator', 'carried-by-migration-0080', 'migration',
         'the balance (and open holds) before credits came in lots'
    FROM farms f LEFT JOIN held h ON h.farm_id = f.id
   WHERE f.credit_balance + coalesce(h.credits, 0) > 0
  RETURNING farm_id, id, amount),
moved AS (
  INSERT INTO credit_lot_moves (farm_id, lot_id, kind, delta)
  SELECT farm_id, id, 'carried', amount FROM carried
  RETURNING farm_id, lot_id)
INSERT INTO credit_lot_moves (farm_id, lot_id, ai_run_id, kind, delta)
SELECT r.farm_id, m.lot_id, r.id, 'hold', -r.credits_reserved
  FROM ai_runs r JOIN moved m ON m.farm_id = r.farm_id
 WHERE r.status = 'reserved';

-- ---------------------------------------------------------------- taking and returning

-- Spendable credits of a farm right now (the caller holds the farm row).
CREATE FUNCTION credit_spendable(farm uuid) RETURNS bigint
  LANGUAGE sql STABLE SET search_path = public AS $$
  SELECT coalesce(sum(remaining), 0)::bigint FROM credit_lots
   WHERE farm_id = farm AND closed_at IS NULL AND revoked_at IS NULL AND remaining > 0
     AND effective_at <= now() AND coalesce(expires_at, 'infinity') > now()
$$;

-- Takes `credits` from the farm's spendable lots in spend order for run `run` (kind 'hold')
-- or for an operator's negative adjustment (run null, kind 'adjust'). The caller has checked
-- that enough is spendable and holds the farm row. Returns what it took.
CREATE FUNCTION credit_take_from_lots(farm uuid, run uuid, credits bigint) RETURNS bigint
  LANGUAGE sql SET search_path = public AS $$
  WITH ordered AS (
    SELECT l.id, l.remaining,
           sum(l.remaining) OVER (ORDER BY l.priority, l.expires_at NULLS LAST, l.id) - l.remaining AS before
      FROM credit_lots l
     WHERE l.farm_id = farm AND l.closed_at IS NULL AND l.revoked_at IS NULL AND l.remaining > 0
       AND l.effective_at <= now() AND coalesce(l.expires_at, 'infinity') > now()),
  take AS (
    SELECT o.id, least(o.remaining, credit_take_from_lots.credits - o.before) AS credits
      FROM ordered o WHERE o.before < credit_take_from_lots.credits),
  spent AS (
    UPDATE credit_lots l SET remaining = l.remaining - t.credits
      FROM take t WHERE l.id = t.id
    RETURNING l.id, t.credits),
  moved AS (
    INSERT INTO credit_lot_moves (farm_id, lot_id, ai_run_id, kind, delta)
    SELECT farm, s.id, run, CASE WHEN run IS NULL THEN 'adjust' ELSE 'hold' END, -s.credits
      FROM spent s
    RETURNING delta)
  SELECT coalesce(-sum(delta), 0)::bigint FROM moved
$$;

-- Returns `credits` of run `run`'s hold to the lots it came from: latest in spend order
-- first, each lot at most what the run still holds from it.
CREATE FUNCTION credit_return_to_lots(farm uuid, run uuid, credits bigint) RETURNS bigint
  LANGUAGE sql SET search_path = public AS $$
  WITH held AS (
    SELECT m.lot_id, -sum(m.delta) AS credits
      FROM credit_lot_moves m
     WHERE m.ai_run_id = run AND m.farm_id = farm
     GROUP BY m.lot_id HAVING -sum(m.delta) > 0),
  ordered AS (
      SELECT h.lot_id, h.credits,
           sum(h.credits) OVER (ORDER BY l.priority DESC, l.expires_at DESC NULLS FIRST, l.id DESC)
             - h.credits AS before
      FROM held h JOIN credit_lots l ON l.id = h.lot_id),
  give AS (
    SELECT o.lot_id, least(o.credits, credit_return_to_lots.credits - o.before) AS credits
      FROM ordered o WHERE o.before < credit_return_to_lots.credits),
  returned AS (
    UPDATE credit_lots l SET remaining = l.remaining + g.credits
      FROM give g WHERE l.id = g.lot_id
    RETURNING l.id, g.credits),
  moved AS (
    INSERT INTO credit_lot_moves (farm_id, lot_id, ai_run_id, kind, delta)
    SELECT farm, r.id, run, 'return', r.credits FROM returned r
    RETURNING delta)
  SELECT coalesce(sum(delta), 0)::bigint FROM moved
$$;

REVOKE ALL ON FUNCTION credit_spendable(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION credit_take_from_lots(uuid, uuid, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION credit_return_to_lots(uuid, uuid, bigint) FROM PUBLIC;

-- ---------------------------------------------------------------- the run doors (0060), lot-aware

-- Opens a run holding `credits` for its first call, taken from the farm's spendable lots.
-- Refused (not enough spendable): run_id is null and balance is what is spendable now.
CREATE OR REPLACE FUNCTION credit_open_run(farm uuid, run_feature text, run_model text, run_user text,
                                           summary text, credits bigint)
  RETURNS TABLE (run_id uuid, held bigint, balance bigint)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  bal       bigint;
  spendable bigint;
  rid       uuid;
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
  IF spendable < credits THEN
    RETURN QUERY SELECT NULL::uuid, 0::bigint, spendable;
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
  RETURN QUERY SELECT rid, credits, bal;
END $$;

-- Tops up an open run's hold by `credits`. Refused: held is null and balance is what is
-- spendable now. A run that is not open on this farm is an error.
CREATE OR REPLACE FUNCTION credit_hold(farm uuid, run uuid, credits bigint)
  RETURNS TABLE (held bigint, balance bigint)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  total     bigint;
  bal       bigint;
  spendable bigint;
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
  IF spendable < credits THEN
    RETURN QUERY SELECT NULL::bigint, spendable;
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
  RETURN QUERY SELECT total, bal;
END $$;

-- Charges `charged` and returns the rest of the hold to its lots; closes the run.
CREATE OR REPLACE FUNCTION credit_settle_run(farm uuid, run uuid, failed boolean, charged bigint,
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
  IF total > charged THEN
    PERFORM credit_return_to_lots(farm, run, total - charged);
  END IF;
  INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor)
  VALUES (farm, 'settle', total - charged, bal, run, 'system');
  RETURN QUERY SELECT total, charged, total - charged, bal;
END $$;

-- Expires the farm's runs opened before `older_than` that never closed, returning each
-- one's whole hold to its lots with an `expire` leg.
CREATE OR REPLACE FUNCTION credit_expire_runs(farm uuid, older_than timestamptz)
  RETURNS TABLE (runs bigint, refunded bigint)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  r     record;
  bal   bigint;
  n     bigint := 0;
  total bigint := 0;
BEGIN
  PERFORM credit_require_tenant(farm);
  FOR r IN
    SELECT a.id FROM ai_runs a
     WHERE a.farm_id = farm AND a.status = 'reserved' AND a.created_at < older_than
     ORDER BY a.id
     FOR UPDATE SKIP LOCKED
  LOOP
    UPDATE ai_runs a
       SET status = 'expired', credits_charged = 0, finished_at = now(),
           error = 'reservation expired: the run never settled'
     WHERE a.id = r.id AND a.status = 'reserved'
    RETURNING a.credits_reserved INTO total;
    CONTINUE WHEN NOT FOUND;
    UPDATE farms f SET credit_balance = f.credit_balance + total
     WHERE f.id = farm RETURNING f.credit_balance INTO bal;
    PERFORM credit_return_to_lots(farm, r.id, total);
    INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor, reason)
    VALUES (farm, 'expire', total, bal, r.id, 'reconcile-credits',
            'reservation older than the longest possible run');
    n := n + 1;
    refunded := coalesce(refunded, 0) + total;
  END LOOP;
  runs := n;
  refunded := coalesce(refunded, 0);
  RETURN NEXT;
END $$;

-- ---------------------------------------------------------------- grants, revocations, expiry

-- Grants a lot (owner role and payment doors only). The same (farm, key) again returns the
-- existing lot with granted = false and changes nothing.
CREATE FUNCTION credit_add_lot(farm uuid, credits bigint, lot_category text, lot_priority integer,
                               effective timestamptz, expires timestamptz, lot_source text,
                               key text, who text, why text)
  RETURNS TABLE (lot_id bigint, granted boolean, balance bigint)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  lid bigint;
  bal bigint;
BEGIN
  IF credits IS NULL OR credits <= 0 THEN
    RAISE EXCEPTION 'a grant must be positive, not %', credits USING ERRCODE = 'check_violation';
  END IF;
  IF expires IS NOT NULL AND expires <= now() THEN
    RAISE EXCEPTION 'a grant must expire in the future, not at %', expires
      USING ERRCODE = 'check_violation';
  END IF;
  PERFORM 1 FROM farms f WHERE f.id = farm FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'farm % does not exist', farm USING ERRCODE = 'no_data_found';
  END IF;
  SELECT l.id INTO lid FROM credit_lots l WHERE l.farm_id = farm AND l.idempotency_key = key;
  IF FOUND THEN
    RETURN QUERY SELECT lid, false, f.credit_balance FROM farms f WHERE f.id = farm;
    RETURN;
  END IF;
  INSERT INTO credit_lots (farm_id, category, priority, amount, remaining, effective_at,
                           expires_at, source, idempotency_key, actor, reason)
  VALUES (farm, lot_category, lot_priority, credits, credits, coalesce(effective, now()),
          expires, lot_source, key, who, why)
  RETURNING id INTO lid;
  INSERT INTO credit_lot_moves (farm_id, lot_id, kind, delta) VALUES (farm, lid, 'grant', credits);
  UPDATE farms f SET credit_balance = f.credit_balance + credits
   WHERE f.id = farm RETURNING f.credit_balance INTO bal;
  INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, actor, reason, lot_id)
  VALUES (farm, 'grant', credits, bal, who, why, lid);
  RETURN QUERY SELECT lid, true, bal;
END $$;

-- Whether an open run of the farm still holds credits from the lot (walks the farm's open
-- runs, not the lot's history).
CREATE FUNCTION credit_lot_held(farm uuid, lot bigint) RETURNS boolean
  LANGUAGE sql STABLE SET search_path = public AS $$
  SELECT EXISTS (
    SELECT 1 FROM ai_runs r JOIN credit_lot_moves m ON m.ai_run_id = r.id AND m.lot_id = lot
     WHERE r.farm_id = farm AND r.status = 'reserved'
     GROUP BY r.id HAVING sum(m.delta) < 0)
$$;
REVOKE ALL ON FUNCTION credit_lot_held(uuid, bigint) FROM PUBLIC;

-- Revokes a lot (a refunded payment): takes what is left of it now with an `adjust` leg,
-- never below zero, and reports the shortfall (already spent, or held by open runs). Credits
-- an open run holds from it that come back later are taken when reconcile closes the lot.
-- Revoking a revoked lot changes nothing (clawed = 0).
CREATE FUNCTION credit_claw_back_lot(farm uuid, lot bigint, credits bigint, who text, why text)
  RETURNS TABLE (clawed bigint, shortfall bigint, balance bigint)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  l     credit_lots%ROWTYPE;
  take  bigint;
  bal   bigint;
BEGIN
  IF credits IS NULL OR credits <= 0 THEN
    RAISE EXCEPTION 'a claw-back must be positive, not %', credits USING ERRCODE = 'check_violation';
  END IF;
  PERFORM 1 FROM farms f WHERE f.id = farm FOR NO KEY UPDATE;
  SELECT * INTO l FROM credit_lots c WHERE c.farm_id = farm AND c.id = lot;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'credit lot % is not on farm %', lot, farm USING ERRCODE = 'no_data_found';
  END IF;
  IF l.revoked_at IS NOT NULL OR l.closed_at IS NOT NULL THEN
    RETURN QUERY SELECT 0::bigint, credits, f.credit_balance FROM farms f WHERE f.id = farm;
    RETURN;
  END IF;
  take := least(credits, l.remaining);
  UPDATE credit_lots c SET remaining = c.remaining - take, revoked_at = now(),
         closed_at = CASE WHEN c.remaining - take = 0 AND NOT credit_lot_held(farm, c.id) THEN now() END
   WHERE c.id = lot;
  IF take > 0 THEN
    INSERT INTO credit_lot_moves (farm_id, lot_id, kind, delta) VALUES (farm, lot, 'revoke', -take);
    UPDATE farms f SET credit_balance = f.credit_balance - take
     WHERE f.id = farm RETURNING f.credit_balance INTO bal;
    INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, actor, reason, lot_id)
    VALUES (farm, 'adjust', -take, bal, who, why, lot);
  ELSE
    SELECT f.credit_balance INTO bal FROM farms f WHERE f.id = farm;
  END IF;
  RETURN QUERY SELECT take, credits - take, bal;
END $$;


-- Closes the farm's lots that are past expiry or revoked and from which no open run holds
-- credits: one `expire_grant` leg per expired lot with its remaining (once: the lot is
-- closed, and a unique index allows one such leg per lot), one `adjust` leg for what came
-- back to a revoked lot. Returns how many lots it closed and the credits they took.
CREATE FUNCTION credit_close_lots(farm uuid)
  RETURNS TABLE (lots bigint, expired bigint)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  l   record;
  bal bigint;
  n   bigint := 0;
  t   bigint := 0;
BEGIN
  PERFORM credit_require_tenant(farm);
  PERFORM 1 FROM farms f WHERE f.id = farm FOR NO KEY UPDATE;
  FOR l IN
    SELECT c.id, c.remaining, c.revoked_at IS NOT NULL AS revoked FROM credit_lots c
     WHERE c.farm_id = farm AND c.closed_at IS NULL
       AND (c.revoked_at IS NOT NULL OR c.expires_at <= now())
       AND NOT credit_lot_held(farm, c.id)
     ORDER BY c.id
  LOOP
    UPDATE credit_lots c SET remaining = 0, closed_at = now() WHERE c.id = l.id;
    IF l.remaining > 0 THEN
      INSERT INTO credit_lot_moves (farm_id, lot_id, kind, delta)
      VALUES (farm, l.id, CASE WHEN l.revoked THEN 'revoke' ELSE 'expire_grant' END, -l.remaining);
      UPDATE farms f SET credit_balance = f.credit_balance - l.remaining
       WHERE f.id = farm RETURNING f.credit_balance INTO bal;
    END IF;
    IF l.revoked AND l.remaining > 0 THEN
      INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, actor, reason, lot_id)
      VALUES (farm, 'adjust', -l.remaining, bal, 'reconcile-credits',
              'returned to a revoked lot after its claw-back', l.id);
    ELSIF NOT l.revoked AND l.remaining > 0 THEN
      INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, actor, reason, lot_id)
      VALUES (farm, 'expire_grant', -l.remaining, bal, 'reconcile-credits',
              'the credit lot expired', l.id);
    END IF;
    n := n + 1;
    t := t + CASE WHEN l.revoked THEN 0 ELSE l.remaining END;
  END LOOP;
  RETURN QUERY SELECT n, t;
END $$;

-- The operator's correction: a positive delta is a new operator lot (paid, no expiry); a
-- negative one is taken from the spendable lots in spend order. Never below zero.
CREATE FUNCTION credit_adjust(farm uuid, delta bigint, who text, why text)
  RETURNS TABLE (balance bigint)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  lid bigint;
  bal bigint;
BEGIN
  IF delta IS NULL OR delta = 0 THEN
    RAISE EXCEPTION 'an adjustment must not be zero' USING ERRCODE = 'check_violation';
  END IF;
  PERFORM 1 FROM farms f WHERE f.id = farm FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'farm % does not exist', farm USING ERRCODE = 'no_data_found';
  END IF;
  IF delta > 0 THEN
    INSERT INTO credit_lots (farm_id, category, priority, amount, remaining, effective_at,
                             source, idempotency_key, actor, reason)
    VALUES (farm, 'paid', 50, delta, delta, now(), 'operator',
            'adjust-' || gen_random_uuid(), who, why)
    RETURNING id INTO lid;
    INSERT INTO credit_lot_moves (farm_id, lot_id, kind, delta) VALUES (farm, lid, 'adjust', delta);
  ELSE
    IF credit_spendable(farm) < -delta THEN
      RETURN;
    END IF;
    PERFORM credit_take_from_lots(farm, NULL, -delta);
  END IF;
  UPDATE farms f SET credit_balance = f.credit_balance + delta
   WHERE f.id = farm RETURNING f.credit_balance INTO bal;
  INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, actor, reason, lot_id)
  VALUES (farm, 'adjust', delta, bal, who, why, lid);
  RETURN QUERY SELECT bal;
END $$;

-- credit_close_lots is the reconcile job's (application role); grants, claw-backs and
-- adjustments are the owner's (and the payments doors', which run as the owner).
REVOKE ALL ON FUNCTION credit_add_lot(uuid, bigint, text, integer, timestamptz, timestamptz, text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION credit_claw_back_lot(uuid, bigint, bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION credit_adjust(uuid, bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION credit_close_lots(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit_close_lots(uuid) TO farmops_app;

-- Farms with lots to close (ids only; the reconcile job then acts under each farm's tenant).
CREATE FUNCTION farms_with_lots_to_close() RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT DISTINCT farm_id FROM credit_lots
   WHERE closed_at IS NULL AND (revoked_at IS NOT NULL OR expires_at <= now())
$$;
REVOKE ALL ON FUNCTION farms_with_lots_to_close() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION farms_with_lots_to_close() TO farmops_app;

-- ---------------------------------------------------------------- sums: expired grants

ALTER TABLE credit_ledger_checkpoints ADD COLUMN grants_expired bigint NOT NULL DEFAULT 0;

DROP FUNCTION checkpoint_credit_ledger(uuid);
DROP FUNCTION credit_ledger_sums(uuid, bigint);
CREATE FUNCTION credit_ledger_sums(farm uuid, after_id bigint)
  RETURNS TABLE (through_id bigint, entries bigint, sum_delta bigint, granted bigint,
                 adjusted bigint, reserved bigint, refunded bigint, expired bigint,
                 negative_balances bigint, grants_expired bigint)
  LANGUAGE sql STABLE AS $$
  SELECT max(l.id), count(*), coalesce(sum(l.delta), 0)::bigint,
         coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'grant'), 0)::bigint,
         coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'adjust'), 0)::bigint,
         coalesce(-sum(l.delta) FILTER (WHERE l.entry_type = 'reserve'), 0)::bigint,
         coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'settle'), 0)::bigint,
         coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'expire'), 0)::bigint,
         count(*) FILTER (WHERE l.balance_after < 0),
         coalesce(-sum(l.delta) FILTER (WHERE l.entry_type = 'expire_grant'), 0)::bigint
    FROM credit_ledger l
   WHERE l.farm_id = farm AND l.id > after_id
$$;
REVOKE ALL ON FUNCTION credit_ledger_sums(uuid, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION credit_ledger_sums(uuid, bigint) TO farmops_app;

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
  SELECT * INTO tail FROM credit_ledger_sums(farm, coalesce(prev.through_id, 0));
  IF tail.entries = 0 THEN
    RETURN 0;
  END IF;
  INSERT INTO credit_ledger_checkpoints
         (farm_id, through_id, entries, sum_delta, granted, adjusted, reserved, refunded,
          expired, negative_balances, balance_after, grants_expired)
  VALUES (farm, tail.through_id,
          coalesce(prev.entries, 0) + tail.entries,
          coalesce(prev.sum_delta, 0) + tail.sum_delta,
          coalesce(prev.granted, 0) + tail.granted,
          coalesce(prev.adjusted, 0) + tail.adjusted,
          coalesce(prev.reserved, 0) + tail.reserved,
          coalesce(prev.refunded, 0) + tail.refunded,
          coalesce(prev.expired, 0) + tail.expired,
          coalesce(prev.negative_balances, 0) + tail.negative_balances,
          (SELECT balance_after FROM credit_ledger WHERE id = tail.through_id),
          coalesce(prev.grants_expired, 0) + tail.grants_expired);
  RETURN tail.entries;
END $$;
REVOKE ALL ON FUNCTION checkpoint_credit_ledger(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION checkpoint_credit_ledger(uuid) TO farmops_app;
