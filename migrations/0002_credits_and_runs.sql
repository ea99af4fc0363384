-- Metering: every AI run and the append-only credit ledger.
--
-- Invariant, enforced here and not only in Rust: for every farm,
--   farms.credit_balance = balance_after of its last ledger row = sum of its deltas,
-- and no balance is ever negative. The two-phase flow is reserve -> settle | expire.

CREATE TABLE ai_runs (
  farm_id           uuid NOT NULL REFERENCES farms (id),
  id                uuid NOT NULL DEFAULT gen_random_uuid(),
  feature           text NOT NULL CHECK (feature IN ('chat', 'embed', 'distill', 'reembed')),
  model             text NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
  user_id           text,                          -- who asked (null for scheduled jobs)
  status            text NOT NULL DEFAULT 'reserved'
                    CHECK (status IN ('reserved', 'succeeded', 'failed', 'expired')),
  credits_reserved  bigint NOT NULL CHECK (credits_reserved > 0),
  credits_charged   bigint CHECK (credits_charged >= 0 AND credits_charged <= credits_reserved),
  input_tokens      integer CHECK (input_tokens >= 0),
  output_tokens     integer CHECK (output_tokens >= 0),
  latency_ms        integer CHECK (latency_ms >= 0),
  request_summary   text,
  response_summary  text,
  error             text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  finished_at       timestamptz,
  PRIMARY KEY (id),
  UNIQUE (farm_id, id),
  -- a finished run says when and what it cost; an open one has neither
  CHECK ((status = 'reserved') = (finished_at IS NULL)),
  CHECK ((status = 'reserved') = (credits_charged IS NULL)),
  CHECK (status <> 'expired' OR credits_charged = 0)
);
CREATE INDEX ai_runs_farm_newest ON ai_runs (farm_id, created_at DESC, id DESC);
CREATE INDEX ai_runs_open ON ai_runs (created_at) WHERE status = 'reserved';

-- A run moves reserved -> succeeded | failed | expired once; a finished run is immutable.
CREATE FUNCTION ai_runs_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status <> 'reserved' THEN
    RAISE EXCEPTION 'ai run % is % and can no longer change', OLD.id, OLD.status
      USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.farm_id <> OLD.farm_id OR NEW.id <> OLD.id OR NEW.credits_reserved <> OLD.credits_reserved
     OR NEW.created_at <> OLD.created_at OR NEW.feature <> OLD.feature THEN
    RAISE EXCEPTION 'ai run %: farm, id, feature, reservation and creation time are fixed', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER ai_runs_guard BEFORE UPDATE ON ai_runs FOR EACH ROW EXECUTE FUNCTION ai_runs_guard();
-- A reservation is settled or expired, never deleted; the ledger refuses edits the same way.
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% on % is not allowed: the table is append-only', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER ai_runs_no_delete BEFORE DELETE ON ai_runs FOR EACH ROW EXECUTE FUNCTION refuse_change();

CREATE TABLE credit_ledger (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  farm_id        uuid NOT NULL REFERENCES farms (id),
  entry_type     text NOT NULL CHECK (entry_type IN ('grant', 'reserve', 'settle', 'expire', 'adjust')),
  delta          bigint NOT NULL,
  balance_after  bigint NOT NULL CHECK (balance_after >= 0),
  ai_run_id      uuid,
  reason         text CHECK (length(reason) <= 500),
  actor          text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (farm_id, ai_run_id) REFERENCES ai_runs (farm_id, id),
  -- the shape of each leg
  CHECK (CASE entry_type
           WHEN 'grant'   THEN delta > 0  AND ai_run_id IS NULL AND reason IS NOT NULL AND actor IS NOT NULL
           WHEN 'adjust'  THEN delta <> 0 AND ai_run_id IS NULL AND reason IS NOT NULL AND actor IS NOT NULL
           WHEN 'reserve' THEN delta < 0  AND ai_run_id IS NOT NULL
           WHEN 'settle'  THEN delta >= 0 AND ai_run_id IS NOT NULL   -- delta = the refund
           WHEN 'expire'  THEN delta > 0  AND ai_run_id IS NOT NULL   -- delta = the whole reservation
         END)
);
CREATE INDEX credit_ledger_farm_last ON credit_ledger (farm_id, id DESC);
-- a run has one reservation and is closed once: settled or expired, never both, never twice
CREATE UNIQUE INDEX credit_ledger_one_reserve ON credit_ledger (ai_run_id) WHERE entry_type = 'reserve';
CREATE UNIQUE INDEX credit_ledger_one_close ON credit_ledger (ai_run_id) WHERE entry_type IN ('settle', 'expire');

-- Append-only: UPDATE, DELETE and TRUNCATE are refused for everyone, the owner included.
CREATE TRIGGER credit_ledger_append_only BEFORE UPDATE OR DELETE ON credit_ledger
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER credit_ledger_no_truncate BEFORE TRUNCATE ON credit_ledger
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- The chain: each row continues the farm's previous row, and at commit the farm's balance
-- equals its last row. Checked at commit (deferred) so one statement may update the farm and
-- append the leg in either order. SECURITY DEFINER: it reads the whole chain whatever the
-- caller's tenant setting.
CREATE FUNCTION credit_ledger_check_chain() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  prev bigint;
  bal  bigint;
BEGIN
  SELECT balance_after INTO prev FROM credit_ledger
   WHERE farm_id = NEW.farm_id AND id < NEW.id ORDER BY id DESC LIMIT 1;
  IF coalesce(prev, 0) + NEW.delta <> NEW.balance_after THEN
    RAISE EXCEPTION 'ledger row % of farm % breaks the chain: % + % <> %',
      NEW.id, NEW.farm_id, coalesce(prev, 0), NEW.delta, NEW.balance_after
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER credit_ledger_chain AFTER INSERT ON credit_ledger
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION credit_ledger_check_chain();

-- At commit, a farm whose balance or ledger changed must have balance = last balance_after.
CREATE FUNCTION check_balance_matches_ledger() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  farm         uuid;
  last_balance bigint;
  current      bigint;
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
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER farms_balance_matches_ledger AFTER INSERT OR UPDATE OF credit_balance ON farms
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION check_balance_matches_ledger();
CREATE CONSTRAINT TRIGGER credit_ledger_matches_farm AFTER INSERT ON credit_ledger
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION check_balance_matches_ledger();

-- Row-level security and privileges: the application appends to the ledger and never edits it.
SELECT enable_tenant_rls('ai_runs', 'SELECT, INSERT, UPDATE');
SELECT enable_tenant_rls('credit_ledger', 'SELECT, INSERT');

-- Scheduled jobs run without a tenant; they learn which farms need work from these
-- SECURITY DEFINER helpers (ids only, no data), then act per farm under its own tenant.
CREATE FUNCTION farms_with_open_reservations(older_than timestamptz) RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT DISTINCT farm_id FROM ai_runs WHERE status = 'reserved' AND created_at < older_than
$$;
REVOKE ALL ON FUNCTION farms_with_open_reservations(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION farms_with_open_reservations(timestamptz) TO farmops_app;
