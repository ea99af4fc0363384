-- The app's API over the farm (issue 21): the farm's time zone, the record of governance acts
-- done through the API (autonomy changes, forgotten memories, membership changes), and the
-- narrow doors through which the application role does them.
--
-- The application role keeps NO write grant on `farms.ai_*` or on `farm_members`: it changes
-- them only by calling the SECURITY DEFINER functions below, each of which checks the caller's
-- role on the tenant farm (`current_farm_id()`), validates, writes and records the act in ONE
-- transaction. The last owner of a farm can never be demoted or removed, by anyone (trigger).
--
-- Expand-only: a column with a default, a new table, new functions and a trigger that only
-- refuses what no code does on purpose; the previous code keeps working.
--
-- Refusals carry SQLSTATEs of their own (class FO), mapped to HTTP by `farmops::farm`:
--   FO403 role too low, FO404 not found (DETAIL names what), FO409 the last owner,
--   FO422 invalid (DETAIL names the field).

ALTER TABLE farms ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC'
  CHECK (length(time_zone) BETWEEN 1 AND 64);

-- Governance acts done through the API, append-only. No content of a forgotten memory is
-- kept here (forgetting means forgetting): its id, who and when.
CREATE TABLE farm_events (
  farm_id     uuid NOT NULL REFERENCES farms (id),
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind        text NOT NULL CHECK (kind IN ('autonomy_changed', 'memory_forgotten', 'member_added',
                                            'member_role_changed', 'member_removed')),
  actor       text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
  subject     text CHECK (length(subject) <= 200),
  details     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX farm_events_farm ON farm_events (farm_id, id DESC);
CREATE TRIGGER farm_events_append_only BEFORE UPDATE OR DELETE ON farm_events
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER farm_events_no_truncate BEFORE TRUNCATE ON farm_events
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
-- the application reads them; only the functions below write them
SELECT enable_tenant_rls('farm_events', 'SELECT');

-- Keyset pages of the API (newest first).
CREATE INDEX conversations_farm_created ON conversations (farm_id, created_at DESC, id DESC);
CREATE INDEX memories_farm_created ON memories (farm_id, created_at DESC, id DESC);
CREATE INDEX ai_recommendations_farm_created ON ai_recommendations (farm_id, created_at DESC, id DESC);
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY record_types() LOOP
    EXECUTE format('CREATE INDEX %I ON %I (farm_id, created_at DESC, id DESC)',
                   record_table(t) || '_farm_created', record_table(t));
  END LOOP;
END $$;

-- The caller's role on the tenant farm; FO404 when there is no tenant or no membership.
CREATE FUNCTION tenant_role_of(who text) RETURNS text
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
DECLARE
  r text;
BEGIN
  SELECT role INTO r FROM farm_members WHERE farm_id = current_farm_id() AND user_id = who;
  IF r IS NULL THEN
    RAISE EXCEPTION 'farm not found' USING ERRCODE = 'FO404', DETAIL = 'farm';
  END IF;
  RETURN r;
END $$;
REVOKE ALL ON FUNCTION tenant_role_of(text) FROM PUBLIC;

-- The one door to a farm's autonomy: owner only; NULL keeps a setting as it is. The floor
-- (sale, expense, mortality are never written directly) cannot be lifted: naming one of
-- them in the auto categories, or overriding one to auto, is refused. Locks the farm row,
-- so two changes serialize; a chat turn keeps the settings it read.
CREATE FUNCTION set_farm_autonomy(actor text, new_tier text, new_categories jsonb, new_overrides jsonb)
  RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  farm uuid := current_farm_id();
  floor_types text[] := ARRAY['mortality', 'sale', 'expense'];
  tiers text[] := ARRAY['suggest', 'draft', 'auto'];
  old_settings jsonb;
  new_settings jsonb;
  t text;
  cats jsonb;
  ovr jsonb;
  bad text;
BEGIN
  IF tenant_role_of(actor) <> 'owner' THEN
    RAISE EXCEPTION 'only an owner may change the farm''s autonomy' USING ERRCODE = 'FO403';
  END IF;
  SELECT jsonb_build_object('tier', ai_autonomy, 'auto_categories', ai_auto_categories,
                            'overrides', ai_record_autonomy)
    INTO old_settings FROM farms WHERE id = farm FOR UPDATE;
  t := coalesce(new_tier, old_settings->>'tier');
  cats := coalesce(new_categories, old_settings->'auto_categories');
  ovr := coalesce(new_overrides, old_settings->'overrides');
  IF NOT t = ANY (tiers) THEN
    RAISE EXCEPTION 'unknown tier %', t USING ERRCODE = 'FO422', DETAIL = 'tier';
  END IF;
  IF jsonb_typeof(cats) <> 'array' THEN
    RAISE EXCEPTION 'auto categories must be an array' USING ERRCODE = 'FO422', DETAIL = 'auto_categories';
  END IF;
  SELECT c INTO bad FROM jsonb_array_elements(cats) c
   WHERE jsonb_typeof(c) <> 'string' OR NOT (c #>> '{}') = ANY (record_types()) LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'unknown record type %', bad USING ERRCODE = 'FO422', DETAIL = 'auto_categories';
  END IF;
  SELECT c INTO bad FROM jsonb_array_elements_text(cats) c WHERE c = ANY (floor_types) LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'the floor: % (like sale, expense and mortality) is never written directly', bad
      USING ERRCODE = 'FO422', DETAIL = 'auto_categories';
  END IF;
  IF jsonb_typeof(ovr) <> 'object' THEN
    RAISE EXCEPTION 'overrides must be an object' USING ERRCODE = 'FO422', DETAIL = 'overrides';
  END IF;
  SELECT key INTO bad FROM jsonb_each(ovr)
   WHERE NOT key = ANY (record_types()) OR jsonb_typeof(value) <> 'string'
      OR NOT (value #>> '{}') = ANY (tiers) LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'override %: unknown record type or tier', bad USING ERRCODE = 'FO422', DETAIL = 'overrides';
  END IF;
  SELECT key INTO bad FROM jsonb_each_text(ovr) WHERE key = ANY (floor_types) AND value = 'auto' LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'the floor: % (like sale, expense and mortality) is never written directly', bad
      USING ERRCODE = 'FO422', DETAIL = 'overrides';
  END IF;
  cats := (SELECT coalesce(jsonb_agg(DISTINCT c ORDER BY c), '[]'::jsonb) FROM jsonb_array_elements(cats) c);
  UPDATE farms SET ai_autonomy = t, ai_auto_categories = cats, ai_record_autonomy = ovr WHERE id = farm;
  new_settings := jsonb_build_object('tier', t, 'auto_categories', cats, 'overrides', ovr);
  INSERT INTO farm_events (farm_id, kind, actor, details)
  VALUES (farm, 'autonomy_changed', actor, jsonb_build_object('before', old_settings, 'after', new_settings));
  RETURN new_settings;
END $$;

-- Adds a member or changes their role. Owners: any change. Managers: add workers and
-- viewers, and move a worker or viewer between those two roles; nothing else.
CREATE FUNCTION set_member_role(actor text, member text, new_role text)
  RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  farm uuid := current_farm_id();
  actor_role text := tenant_role_of(actor);
  old_role text;
  m farm_members;
BEGIN
  IF new_role IS NULL OR NOT new_role IN ('owner', 'manager', 'worker', 'viewer') THEN
    RAISE EXCEPTION 'unknown role %', new_role USING ERRCODE = 'FO422', DETAIL = 'role';
  END IF;
  IF member IS NULL OR length(member) NOT BETWEEN 1 AND 200 OR member ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'a user id is 1 to 200 printable characters' USING ERRCODE = 'FO422', DETAIL = 'user_id';
  END IF;
  SELECT role INTO old_role FROM farm_members WHERE farm_id = farm AND user_id = member FOR UPDATE;
  IF NOT (actor_role = 'owner'
          OR (actor_role = 'manager' AND coalesce(old_role, 'viewer') IN ('worker', 'viewer')
              AND new_role IN ('worker', 'viewer'))) THEN
    RAISE EXCEPTION 'a % may not make a % of %', actor_role, new_role, coalesce(old_role, 'a new member')
      USING ERRCODE = 'FO403';
  END IF;
  IF old_role IS NULL THEN
    INSERT INTO farm_members (farm_id, user_id, role) VALUES (farm, member, new_role) RETURNING * INTO m;
    INSERT INTO farm_events (farm_id, kind, actor, subject, details)
    VALUES (farm, 'member_added', actor, member, jsonb_build_object('role', new_role));
  ELSIF old_role <> new_role THEN
    UPDATE farm_members SET role = new_role WHERE farm_id = farm AND user_id = member RETURNING * INTO m;
    INSERT INTO farm_events (farm_id, kind, actor, subject, details)
    VALUES (farm, 'member_role_changed', actor, member, jsonb_build_object('from', old_role, 'to', new_role));
  ELSE
    SELECT * INTO m FROM farm_members WHERE farm_id = farm AND user_id = member;
  END IF;
  RETURN jsonb_build_object('user_id', m.user_id, 'role', m.role, 'since', m.created_at);
END $$;

-- Removes a member (owners only). Their next request finds no farm.
CREATE FUNCTION remove_member(actor text, member text)
  RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  farm uuid := current_farm_id();
  old_role text;
BEGIN
  IF tenant_role_of(actor) <> 'owner' THEN
    RAISE EXCEPTION 'only an owner may remove a member' USING ERRCODE = 'FO403';
  END IF;
  DELETE FROM farm_members WHERE farm_id = farm AND user_id = member RETURNING role INTO old_role;
  IF old_role IS NULL THEN
    RAISE EXCEPTION 'member not found' USING ERRCODE = 'FO404', DETAIL = 'member';
  END IF;
  INSERT INTO farm_events (farm_id, kind, actor, subject, details)
  VALUES (farm, 'member_removed', actor, member, jsonb_build_object('role', old_role));
END $$;

-- A farm always keeps an owner: demoting or removing its last one is refused, whoever tries
-- (the API, the operator CLI, plain SQL). Two concurrent demotions of the last two owners
-- serialize on a per-farm advisory lock taken after the row change, so the second one sees
-- the first (READ COMMITTED: the check's snapshot is taken after the lock).
CREATE FUNCTION farm_keeps_an_owner() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  IF OLD.role <> 'owner' OR (TG_OP = 'UPDATE' AND NEW.role = 'owner' AND NEW.farm_id = OLD.farm_id) THEN
    RETURN NULL;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended('farm_owners:' || OLD.farm_id::text, 0));
  IF EXISTS (SELECT 1 FROM farms WHERE id = OLD.farm_id)
     AND NOT EXISTS (SELECT 1 FROM farm_members WHERE farm_id = OLD.farm_id AND role = 'owner') THEN
    RAISE EXCEPTION 'farm % would be left without an owner', OLD.farm_id USING ERRCODE = 'FO409';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER farm_members_keep_an_owner AFTER UPDATE OR DELETE ON farm_members
  FOR EACH ROW EXECUTE FUNCTION farm_keeps_an_owner();

-- Forgets a memory (owners, managers): the memory, the older versions it superseded, and
-- their embeddings (ON DELETE CASCADE) in this one transaction; the summaries of their source
-- conversations too (a summary may repeat the fact; the next distillation writes a new one).
-- Takes the farm's memory lock, the one the distill job holds while it writes memories, so a
-- forget and a distillation never interleave. Returns the ids forgotten.
CREATE FUNCTION forget_memory(actor text, memory uuid)
  RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  farm uuid := current_farm_id();
  ids uuid[];
  convs uuid[];
  embedded bigint;
BEGIN
  IF NOT tenant_role_of(actor) IN ('owner', 'manager') THEN
    RAISE EXCEPTION 'only an owner or a manager may forget a memory' USING ERRCODE = 'FO403';
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended('memories:' || farm::text, 0));
  WITH RECURSIVE chain AS (
    SELECT id FROM memories WHERE farm_id = farm AND id = memory
    UNION
    SELECT m.id FROM memories m JOIN chain c ON m.superseded_by = c.id WHERE m.farm_id = farm)
  SELECT array_agg(id) INTO ids FROM chain;
  IF ids IS NULL THEN
    RAISE EXCEPTION 'memory not found' USING ERRCODE = 'FO404', DETAIL = 'memory';
  END IF;
  SELECT array_agg(DISTINCT conversation_id) INTO convs
    FROM memories WHERE farm_id = farm AND id = ANY (ids) AND conversation_id IS NOT NULL;
  SELECT count(*) INTO embedded FROM embeddings WHERE farm_id = farm AND memory_id = ANY (ids);
  DELETE FROM embeddings WHERE farm_id = farm AND conversation_id = ANY (coalesce(convs, '{}'));
  UPDATE conversations SET summary = NULL WHERE farm_id = farm AND id = ANY (coalesce(convs, '{}'));
  DELETE FROM memories WHERE farm_id = farm AND id = ANY (ids);
  INSERT INTO farm_events (farm_id, kind, actor, subject, details)
  VALUES (farm, 'memory_forgotten', actor, memory::text,
          jsonb_build_object('memories', to_jsonb(ids), 'embeddings', embedded,
                             'summaries_dropped', coalesce(cardinality(convs), 0)));
  RETURN jsonb_build_object('forgotten', to_jsonb(ids), 'embeddings_deleted', embedded);
END $$;

REVOKE ALL ON FUNCTION set_farm_autonomy(text, text, jsonb, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION set_member_role(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION remove_member(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION forget_memory(text, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION farm_keeps_an_owner() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION set_farm_autonomy(text, text, jsonb, jsonb) TO farmops_app;
GRANT EXECUTE ON FUNCTION set_member_role(text, text, text) TO farmops_app;
GRANT EXECUTE ON FUNCTION remove_member(text, text) TO farmops_app;
GRANT EXECUTE ON FUNCTION forget_memory(text, uuid) TO farmops_app;
