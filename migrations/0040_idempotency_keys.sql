-- Idempotency keys for the human decisions (confirm, discard, approve, reject).
--
-- A request carrying an `Idempotency-Key` header first CLAIMS its key by inserting a row with
-- no response yet (INSERT ... ON CONFLICT DO NOTHING), does its work, then stores its response
-- in the same row, all in ONE transaction. A concurrent request with the same key blocks on
-- the primary key until the first commits (then it reads the saved response) or rolls back
-- (then it claims the key and does the work itself): exactly one request does the work.
--
-- Keys are scoped to (farm, caller): a key only ever replays the caller's own response.
-- Only successful responses are saved (a refused attempt rolls back, claim included).
CREATE TABLE idempotency_keys (
  farm_id      uuid NOT NULL REFERENCES farms (id),
  user_id      text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 200),
  key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  -- sha256 (hex) of the route, its target id and the canonical request body
  fingerprint  text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
  status_code  smallint CHECK (status_code BETWEEN 200 AND 299),
  response     jsonb,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (farm_id, user_id, key),
  CHECK ((status_code IS NULL) = (response IS NULL))
);

-- A saved response never changes; only the empty claim may be answered, once.
CREATE FUNCTION idempotency_key_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.response IS NOT NULL THEN
    RAISE EXCEPTION 'idempotency key % already has its response', OLD.key
      USING ERRCODE = 'check_violation';
  END IF;
  IF (OLD.farm_id, OLD.user_id, OLD.key, OLD.fingerprint, OLD.created_at)
     IS DISTINCT FROM (NEW.farm_id, NEW.user_id, NEW.key, NEW.fingerprint, NEW.created_at) THEN
    RAISE EXCEPTION 'idempotency key %: only the response may be set', OLD.key
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER idempotency_keys_guard BEFORE UPDATE ON idempotency_keys
  FOR EACH ROW EXECUTE FUNCTION idempotency_key_guard();

-- At commit, every claim carries its response: an empty claim can never be committed (it
-- would block the key forever).
CREATE FUNCTION idempotency_key_answered() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM idempotency_keys
                  WHERE farm_id = NEW.farm_id AND user_id = NEW.user_id AND key = NEW.key
                    AND response IS NOT NULL) THEN
    RAISE EXCEPTION 'idempotency key % was claimed but never answered', NEW.key
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER idempotency_keys_answered AFTER INSERT ON idempotency_keys
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION idempotency_key_answered();

-- The application claims, reads and answers keys; it never deletes them (the operator may
-- purge old ones as the owner).
SELECT enable_tenant_rls('idempotency_keys', 'SELECT, INSERT, UPDATE (status_code, response)');

-- A rejected recommendation says why, as a discarded draft does. coalesce, because a CHECK
-- passes on NULL: `length(btrim(NULL)) > 0` is NULL, so the rule on assistant_drafts in 0003
-- lets a discard with no note at all through; closed here too.
ALTER TABLE ai_recommendations
  ADD CONSTRAINT rejection_says_why
  CHECK (status <> 'rejected' OR coalesce(length(btrim(decision_note)), 0) > 0);
ALTER TABLE assistant_drafts
  ADD CONSTRAINT discard_says_why
  CHECK (status <> 'discarded' OR coalesce(length(btrim(decision_note)), 0) > 0);
