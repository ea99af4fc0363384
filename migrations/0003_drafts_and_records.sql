-- What the AI may propose and what it may write: drafts held for a human, recommendations,
-- and the farm records themselves with their provenance.

CREATE FUNCTION record_types() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT ARRAY['mortality', 'feed_use', 'sale', 'expense', 'water', 'weight', 'symptom', 'note', 'task']
$$;

-- Which table holds the records of a type.
CREATE FUNCTION record_table(record_type text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE record_type
    WHEN 'mortality' THEN 'mortality_events'
    WHEN 'feed_use'  THEN 'feed_logs'
    WHEN 'sale'      THEN 'sales'
    WHEN 'expense'   THEN 'expenses'
    WHEN 'water'     THEN 'water_logs'
    WHEN 'weight'    THEN 'weight_records'
    WHEN 'symptom'   THEN 'symptom_reports'
    WHEN 'note'      THEN 'notes'
    WHEN 'task'      THEN 'tasks'
  END
$$;

CREATE TABLE assistant_drafts (
  farm_id         uuid NOT NULL REFERENCES farms (id),
  id              uuid NOT NULL DEFAULT gen_random_uuid(),
  ai_run_id       uuid,
  record_type     text NOT NULL CHECK (record_type = ANY (record_types())),
  payload         jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),   -- what the AI proposed
  edited_payload  jsonb CHECK (jsonb_typeof(edited_payload) = 'object'),     -- what the human confirmed, if edited
  summary         text CHECK (length(summary) <= 500),
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'confirmed', 'discarded')),
  created_by      text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  decided_by      text,
  decided_at      timestamptz,
  decision_note   text CHECK (length(decision_note) <= 500),
  record_id       uuid,
  PRIMARY KEY (id),
  UNIQUE (farm_id, id),
  FOREIGN KEY (farm_id, ai_run_id) REFERENCES ai_runs (farm_id, id),
  CHECK ((status = 'pending') = (decided_by IS NULL)),
  CHECK ((status = 'pending') = (decided_at IS NULL)),
  CHECK ((status = 'confirmed') = (record_id IS NOT NULL)),               -- a confirmed draft links its record
  CHECK (status <> 'discarded' OR length(btrim(decision_note)) > 0),       -- a discard says why
  CHECK (status = 'confirmed' OR edited_payload IS NULL)
);
CREATE INDEX assistant_drafts_farm_status ON assistant_drafts (farm_id, status, created_at DESC);
CREATE INDEX assistant_drafts_run ON assistant_drafts (farm_id, ai_run_id);

CREATE TABLE ai_recommendations (
  farm_id        uuid NOT NULL REFERENCES farms (id),
  id             uuid NOT NULL DEFAULT gen_random_uuid(),
  ai_run_id      uuid,
  title          text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
  body           text NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
  status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
  created_by     text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  decided_by     text,
  decided_at     timestamptz,
  decision_note  text CHECK (length(decision_note) <= 500),
  PRIMARY KEY (id),
  UNIQUE (farm_id, id),
  FOREIGN KEY (farm_id, ai_run_id) REFERENCES ai_runs (farm_id, id),
  CHECK ((status = 'pending') = (decided_by IS NULL)),
  CHECK ((status = 'pending') = (decided_at IS NULL))
);
CREATE INDEX ai_recommendations_farm_status ON ai_recommendations (farm_id, status, created_at DESC);
CREATE INDEX ai_recommendations_run ON ai_recommendations (farm_id, ai_run_id);

-- Decisions are final: a pending row may be decided once (confirmed/discarded,
-- approved/rejected); a decided row never changes again; nothing but the decision columns
-- (and, for drafts, the edited payload and the record link) ever changes; nothing is deleted.
CREATE FUNCTION decision_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  mutable text[] := ARRAY['status', 'decided_by', 'decided_at', 'decision_note', 'edited_payload', 'record_id'];
BEGIN
  IF OLD.status <> 'pending' THEN
    RAISE EXCEPTION '% % is already % and cannot change', TG_TABLE_NAME, OLD.id, OLD.status
      USING ERRCODE = 'check_violation';
  END IF;
  IF (to_jsonb(OLD) - mutable) IS DISTINCT FROM (to_jsonb(NEW) - mutable) THEN
    RAISE EXCEPTION '% %: only the decision may change', TG_TABLE_NAME, OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER assistant_drafts_decision BEFORE UPDATE ON assistant_drafts
  FOR EACH ROW EXECUTE FUNCTION decision_guard();
CREATE TRIGGER ai_recommendations_decision BEFORE UPDATE ON ai_recommendations
  FOR EACH ROW EXECUTE FUNCTION decision_guard();
CREATE TRIGGER assistant_drafts_no_delete BEFORE DELETE ON assistant_drafts
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER ai_recommendations_no_delete BEFORE DELETE ON ai_recommendations
  FOR EACH ROW EXECUTE FUNCTION refuse_change();

SELECT enable_tenant_rls('assistant_drafts', 'SELECT, INSERT, UPDATE');
SELECT enable_tenant_rls('ai_recommendations', 'SELECT, INSERT, UPDATE');

-- Farm records. Each table gets the same provenance columns and rules from
-- add_record_provenance below; its own columns carry its own CHECKs.
CREATE TABLE mortality_events (
  count         integer NOT NULL CHECK (count BETWEEN 1 AND 1000000),
  animal_group  text CHECK (length(animal_group) <= 100),
  location      text CHECK (length(location) <= 100),
  cause         text CHECK (length(cause) <= 500)
);
CREATE TABLE feed_logs (
  quantity      numeric(12, 3) NOT NULL CHECK (quantity > 0 AND quantity <= 1000000),
  unit          text NOT NULL CHECK (unit IN ('kg', 'g', 'bag', 'tonne')),
  feed_type     text CHECK (length(feed_type) <= 100),
  location      text CHECK (length(location) <= 100)
);
CREATE TABLE sales (
  item          text NOT NULL CHECK (length(item) BETWEEN 1 AND 100),
  quantity      numeric(12, 3) NOT NULL CHECK (quantity > 0 AND quantity <= 1000000),
  unit          text NOT NULL CHECK (length(unit) BETWEEN 1 AND 30),
  amount_kobo   bigint NOT NULL CHECK (amount_kobo > 0 AND amount_kobo <= 100000000000000),
  buyer         text CHECK (length(buyer) <= 100)
);
CREATE TABLE expenses (
  category      text NOT NULL CHECK (category IN ('feed', 'medication', 'vaccine', 'veterinary', 'labour',
                                                  'utilities', 'equipment', 'transport', 'other')),
  amount_kobo   bigint NOT NULL CHECK (amount_kobo > 0 AND amount_kobo <= 100000000000000),
  description   text NOT NULL CHECK (length(description) BETWEEN 1 AND 500),
  vendor        text CHECK (length(vendor) <= 100)
);
CREATE TABLE water_logs (
  litres        numeric(12, 3) NOT NULL CHECK (litres > 0 AND litres <= 10000000),
  location      text CHECK (length(location) <= 100)
);
CREATE TABLE weight_records (
  average_grams numeric(12, 3) NOT NULL CHECK (average_grams > 0 AND average_grams <= 2000000),
  sample_size   integer CHECK (sample_size BETWEEN 1 AND 1000000),
  animal_group  text CHECK (length(animal_group) <= 100),
  location      text CHECK (length(location) <= 100)
);
CREATE TABLE symptom_reports (
  symptoms       text NOT NULL CHECK (length(symptoms) BETWEEN 1 AND 1000),
  affected_count integer CHECK (affected_count BETWEEN 1 AND 1000000),
  severity       text CHECK (severity IN ('mild', 'moderate', 'severe')),
  animal_group   text CHECK (length(animal_group) <= 100),
  location       text CHECK (length(location) <= 100)
);
CREATE TABLE notes (
  body          text NOT NULL CHECK (length(body) BETWEEN 1 AND 4000)
);
CREATE TABLE tasks (
  title         text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
  due_on        date,
  done          boolean NOT NULL DEFAULT false
);

-- Provenance, identical on every record table:
--   source manual | ai_auto | ai_draft; ai_draft rows name their draft and who confirmed it,
--   ai_auto rows name their run; at most one record per draft; composite keys to the farm's
--   own draft and run; financial and destructive tables refuse ai_auto outright.
CREATE FUNCTION add_record_provenance(tbl regclass, financial_or_destructive boolean)
  RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  EXECUTE format($sql$
    ALTER TABLE %1$s
      ADD COLUMN farm_id      uuid NOT NULL REFERENCES farms (id),
      ADD COLUMN id           uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
      ADD COLUMN occurred_on  date NOT NULL DEFAULT current_date,
      ADD COLUMN source       text NOT NULL CHECK (source IN ('manual', 'ai_auto', 'ai_draft')),
      ADD COLUMN draft_id     uuid UNIQUE,
      ADD COLUMN ai_run_id    uuid,
      ADD COLUMN created_by   text NOT NULL,
      ADD COLUMN confirmed_by text,
      ADD COLUMN confirmed_at timestamptz,
      ADD COLUMN created_at   timestamptz NOT NULL DEFAULT now(),
      ADD UNIQUE (farm_id, id),
      ADD FOREIGN KEY (farm_id, draft_id) REFERENCES assistant_drafts (farm_id, id),
      ADD FOREIGN KEY (farm_id, ai_run_id) REFERENCES ai_runs (farm_id, id),
      ADD CHECK (CASE source
                   WHEN 'manual'   THEN draft_id IS NULL AND confirmed_by IS NULL AND confirmed_at IS NULL
                   WHEN 'ai_auto'  THEN draft_id IS NULL AND ai_run_id IS NOT NULL AND confirmed_by IS NULL
                   WHEN 'ai_draft' THEN draft_id IS NOT NULL AND confirmed_by IS NOT NULL AND confirmed_at IS NOT NULL
                 END)
  $sql$, tbl);
  IF financial_or_destructive THEN
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT no_ai_auto CHECK (source <> %L)', tbl, 'ai_auto');
  END IF;
  EXECUTE format('CREATE INDEX ON %s (farm_id, occurred_on DESC, created_at DESC)', tbl);
  EXECUTE format('CREATE CONSTRAINT TRIGGER draft_link AFTER INSERT ON %s DEFERRABLE INITIALLY DEFERRED '
                 'FOR EACH ROW EXECUTE FUNCTION record_matches_confirmed_draft()', tbl);
  PERFORM enable_tenant_rls(tbl, 'SELECT, INSERT');
END $fn$;
REVOKE ALL ON FUNCTION add_record_provenance(regclass, boolean) FROM PUBLIC;

-- At commit: a record made from a draft belongs to a draft of its own type that is confirmed
-- and links back to it; a confirmed draft's record exists in its type's table.
CREATE FUNCTION record_matches_confirmed_draft() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  ok boolean;
BEGIN
  IF NEW.source <> 'ai_draft' THEN
    RETURN NULL;
  END IF;
  SELECT d.status = 'confirmed' AND d.record_id = NEW.id AND record_table(d.record_type) = TG_TABLE_NAME
    INTO ok FROM assistant_drafts d WHERE d.farm_id = NEW.farm_id AND d.id = NEW.draft_id;
  IF ok IS NOT TRUE THEN
    RAISE EXCEPTION 'record % in % does not match a confirmed draft %', NEW.id, TG_TABLE_NAME, NEW.draft_id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION draft_has_its_record() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  found boolean;
BEGIN
  IF NEW.status <> 'confirmed' THEN
    RETURN NULL;
  END IF;
  EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE farm_id = $1 AND id = $2 AND draft_id = $3)',
                 record_table(NEW.record_type))
    INTO found USING NEW.farm_id, NEW.record_id, NEW.id;
  IF NOT found THEN
    RAISE EXCEPTION 'draft % is confirmed but its % record % does not exist', NEW.id, NEW.record_type, NEW.record_id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER assistant_drafts_record_exists AFTER UPDATE OF status ON assistant_drafts
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION draft_has_its_record();

SELECT add_record_provenance('mortality_events', true);
SELECT add_record_provenance('feed_logs',        false);
SELECT add_record_provenance('sales',            true);
SELECT add_record_provenance('expenses',         true);
SELECT add_record_provenance('water_logs',       false);
SELECT add_record_provenance('weight_records',   false);
SELECT add_record_provenance('symptom_reports',  false);
SELECT add_record_provenance('notes',            false);
SELECT add_record_provenance('tasks',            false);
