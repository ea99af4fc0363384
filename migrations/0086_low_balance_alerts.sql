-- Low-balance alerts (issue 18, part 2): a farm sets credit thresholds (e.g. 100 and 20);
-- the transaction whose debit takes the balance from at-or-above a threshold to below it
-- writes one outbox row in the same transaction; a dispatcher publishes each row to
-- EventBridge (at least once, the row's id as the event's id) and marks it sent.
--
-- Where the crossing is detected: a trigger on every new ledger leg. Every change of a farm's
-- balance writes exactly one leg with its delta and balance_after (0002, 0060, 0080), whoever
-- the writer (the hold doors, settle, expire, credit_adjust, credit_close_lots,
-- credit_claw_back_lot, grants, and any door added later), and every writer holds the farm
-- row, so the legs of a farm are serialized and the trigger sees each step of the balance
-- exactly once: the balance before a leg is balance_after - delta. A threshold fires when it
-- is armed and a debit takes the balance from >= threshold to < threshold; firing disarms it.
--
-- Re-arming: a threshold re-arms when credits come in (a `grant` or a positive `adjust` leg)
-- and the balance is back at or above it. A run's own refund (a settle or an expire leg) does
-- not re-arm: holds are taken per model call and mostly returned at settle, so a balance
-- hovering at a threshold would otherwise alert on every turn. So: one alert per fall below a
-- threshold, until the farm is topped up past it again.
--
-- Thresholds are set only through `set_credit_alerts` (owner, manager): positive whole
-- credits up to 1,000,000,000, at most 10, from highest to lowest without duplicates; a new
-- threshold is armed when the balance is at or above it. Recorded in farm_events.
--
-- Expand-only: new tables, functions, a trigger that only adds rows.

CREATE TABLE credit_alert_thresholds (
  farm_id    uuid NOT NULL REFERENCES farms (id),
  threshold  bigint NOT NULL CHECK (threshold BETWEEN 1 AND 1000000000),
  armed      boolean NOT NULL,
  PRIMARY KEY (farm_id, threshold)
);
SELECT enable_tenant_rls('credit_alert_thresholds', 'SELECT');

-- One row per crossing; `id` is the published event's id (consumers de-duplicate on it).
CREATE TABLE credit_alert_outbox (
  id          uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
  farm_id     uuid NOT NULL REFERENCES farms (id),
  threshold   bigint NOT NULL,
  balance     bigint NOT NULL,
  ledger_id   bigint NOT NULL,               -- the leg that crossed
  created_at  timestamptz NOT NULL DEFAULT now(),
  sent_at     timestamptz,
  attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  last_error  text CHECK (length(last_error) <= 1000),
  UNIQUE (ledger_id, threshold)
);
CREATE INDEX credit_alert_outbox_unsent ON credit_alert_outbox (farm_id, created_at) WHERE sent_at IS NULL;
CREATE INDEX credit_alert_outbox_farm ON credit_alert_outbox (farm_id, created_at DESC);
-- the dispatcher marks rows sent (and counts failed attempts); nothing else
SELECT enable_tenant_rls('credit_alert_outbox', 'SELECT, UPDATE (sent_at, attempts, last_error)');
CREATE FUNCTION credit_alert_outbox_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.sent_at IS NOT NULL AND NEW.sent_at IS DISTINCT FROM OLD.sent_at THEN
    RAISE EXCEPTION 'alert % was already sent', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER credit_alert_outbox_guard BEFORE UPDATE ON credit_alert_outbox
  FOR EACH ROW EXECUTE FUNCTION credit_alert_outbox_guard();
CREATE TRIGGER credit_alert_outbox_no_delete BEFORE DELETE ON credit_alert_outbox
  FOR EACH ROW EXECUTE FUNCTION refuse_change();

ALTER TABLE farm_events DROP CONSTRAINT farm_events_kind_check;
ALTER TABLE farm_events ADD CONSTRAINT farm_events_kind_check
  CHECK (kind IN ('autonomy_changed', 'memory_forgotten', 'member_added', 'member_role_changed',
                  'member_removed', 'member_budget_set', 'credit_alerts_set'));

-- Each new ledger leg: a debit crossing armed thresholds writes one outbox row per threshold
-- and disarms it; credits coming in re-arm the thresholds at or below the new balance.
CREATE FUNCTION credit_alert_on_leg() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  prior bigint := NEW.balance_after - NEW.delta;
BEGIN
  IF NEW.delta < 0 THEN
    WITH crossed AS (
      UPDATE credit_alert_thresholds t SET armed = false
       WHERE t.farm_id = NEW.farm_id AND t.armed
         AND prior >= t.threshold AND NEW.balance_after < t.threshold
      RETURNING t.threshold)
    INSERT INTO credit_alert_outbox (farm_id, threshold, balance, ledger_id)
    SELECT NEW.farm_id, c.threshold, NEW.balance_after, NEW.id FROM crossed c;
  ELSIF NEW.delta > 0 AND NEW.entry_type IN ('grant', 'adjust') THEN
    UPDATE credit_alert_thresholds t SET armed = true
     WHERE t.farm_id = NEW.farm_id AND NOT t.armed AND t.threshold <= NEW.balance_after;
  END IF;
  RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION credit_alert_on_leg() FROM PUBLIC;
CREATE TRIGGER credit_ledger_alerts AFTER INSERT ON credit_ledger
  FOR EACH ROW EXECUTE FUNCTION credit_alert_on_leg();

-- The door: sets the farm's thresholds (owner, manager). Kept thresholds keep their state; a
-- new one is armed when the balance is at or above it. An empty array removes them all.
CREATE FUNCTION set_credit_alerts(actor text, thresholds jsonb)
  RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  farm uuid := current_farm_id();
  wanted bigint[];
  old_thresholds jsonb;
  bal bigint;
  prev numeric;
  v jsonb;
BEGIN
  IF NOT tenant_role_of(actor) IN ('owner', 'manager') THEN
    RAISE EXCEPTION 'only an owner or a manager may set the credit alerts' USING ERRCODE = 'FO403';
  END IF;
  IF thresholds IS NULL OR jsonb_typeof(thresholds) <> 'array' OR jsonb_array_length(thresholds) > 10 THEN
    RAISE EXCEPTION 'thresholds are an array of at most 10 credit amounts' USING ERRCODE = 'FO422', DETAIL = 'thresholds';
  END IF;
  FOR v IN SELECT e FROM jsonb_array_elements(thresholds) e LOOP
    IF jsonb_typeof(v) <> 'number' OR (v #>> '{}')::numeric <> trunc((v #>> '{}')::numeric)
       OR (v #>> '{}')::numeric NOT BETWEEN 1 AND 1000000000 THEN
      RAISE EXCEPTION 'a threshold is a whole number of credits from 1 to 1000000000, not %', v
        USING ERRCODE = 'FO422', DETAIL = 'thresholds';
    END IF;
    IF prev IS NOT NULL AND (v #>> '{}')::numeric >= prev THEN
      RAISE EXCEPTION 'thresholds go from highest to lowest without duplicates (% after %)', v, prev
        USING ERRCODE = 'FO422', DETAIL = 'thresholds';
    END IF;
    prev := (v #>> '{}')::numeric;
  END LOOP;
  SELECT coalesce(array_agg((e #>> '{}')::bigint), '{}') INTO wanted FROM jsonb_array_elements(thresholds) e;
  SELECT f.credit_balance INTO bal FROM farms f WHERE f.id = farm FOR NO KEY UPDATE;
  SELECT coalesce(jsonb_agg(t.threshold ORDER BY t.threshold DESC), '[]') INTO old_thresholds
    FROM credit_alert_thresholds t WHERE t.farm_id = farm;
  DELETE FROM credit_alert_thresholds t WHERE t.farm_id = farm AND NOT t.threshold = ANY (wanted);
  INSERT INTO credit_alert_thresholds (farm_id, threshold, armed)
  SELECT farm, w, bal >= w FROM unnest(wanted) w
  ON CONFLICT (farm_id, threshold) DO NOTHING;
  IF old_thresholds IS DISTINCT FROM thresholds THEN
    INSERT INTO farm_events (farm_id, kind, actor, details)
    VALUES (farm, 'credit_alerts_set', actor, jsonb_build_object('before', old_thresholds, 'after', thresholds));
  END IF;
  RETURN jsonb_build_object('thresholds', (
    SELECT coalesce(jsonb_agg(jsonb_build_object('threshold', t.threshold, 'armed', t.armed)
                              ORDER BY t.threshold DESC), '[]')
      FROM credit_alert_thresholds t WHERE t.farm_id = farm));
END $$;
REVOKE ALL ON FUNCTION set_credit_alerts(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION set_credit_alerts(text, jsonb) TO farmops_app;

-- Farms with alerts to publish (ids only; the dispatcher then acts under each farm's tenant).
CREATE FUNCTION farms_with_unsent_alerts() RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT DISTINCT farm_id FROM credit_alert_outbox WHERE sent_at IS NULL
$$;
REVOKE ALL ON FUNCTION farms_with_unsent_alerts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION farms_with_unsent_alerts() TO farmops_app;
