-- Tenancy: farms (the tenant boundary), members, the roles the application and the
-- migrations run as, and the function every row-level-security policy keys on.
--
-- Roles (cluster-wide, created by the operator / deploy before this runs, created here as
-- NOLOGIN if missing):
--   farmops_owner  owns every object; runs migrations and the operator CLI.
--   farmops_app    what the Lambdas connect as; owns nothing; sees one farm per transaction.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'farmops_app') THEN
    CREATE ROLE farmops_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
  END IF;
END $$;

CREATE EXTENSION IF NOT EXISTS vector;

GRANT USAGE ON SCHEMA public TO farmops_app;

-- The tenant of the current transaction: set only with
--   SELECT set_config('app.farm_id', '<uuid>', true)
-- (transaction-local, so it never leaks to the next user of a pooled connection and RDS Proxy
-- does not pin). Unset or empty means "no tenant": every policy then matches nothing.
CREATE FUNCTION current_farm_id() RETURNS uuid
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT nullif(current_setting('app.farm_id', true), '')::uuid $$;

-- The shared knowledge base lives in this fixed farm.
CREATE FUNCTION global_farm_id() RETURNS uuid
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT '00000000-0000-0000-0000-000000000000'::uuid $$;

CREATE TABLE farms (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  credit_balance      bigint NOT NULL DEFAULT 0 CHECK (credit_balance >= 0),
  ai_autonomy         text NOT NULL DEFAULT 'draft' CHECK (ai_autonomy IN ('suggest', 'draft', 'auto')),
  -- record types the 'auto' tier may write directly (an array of record type names)
  ai_auto_categories  jsonb NOT NULL DEFAULT '[]'::jsonb
                      CHECK (jsonb_typeof(ai_auto_categories) = 'array'),
  -- per record type override of the tier: {"feed_use": "auto", "note": "suggest"}
  ai_record_autonomy  jsonb NOT NULL DEFAULT '{}'::jsonb
                      CHECK (jsonb_typeof(ai_record_autonomy) = 'object'),
  created_at          timestamptz NOT NULL DEFAULT now(),
  -- the global farm is named __global__ and nothing else may take that name
  CHECK ((id = global_farm_id()) = (name = '__global__'))
);

INSERT INTO farms (id, name) VALUES (global_farm_id(), '__global__');

CREATE TABLE farm_members (
  farm_id     uuid NOT NULL REFERENCES farms (id) ON DELETE CASCADE,
  user_id     text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 200),
  role        text NOT NULL CHECK (role IN ('owner', 'manager', 'worker', 'viewer')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (farm_id, user_id)
);

-- Row-level security for one tenant table, the same way everywhere:
--   ENABLE + FORCE; the application role sees and writes only rows of current_farm_id();
--   with global_read, it also reads (never writes) rows of the __global__ farm;
--   the migrating role (owner: operator CLI, SECURITY DEFINER job helpers) sees every farm;
--   the application gets exactly the privileges listed in app_privileges.
CREATE FUNCTION enable_tenant_rls(tbl regclass, app_privileges text, global_read boolean DEFAULT false)
  RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
  key text := CASE WHEN tbl = 'farms'::regclass THEN 'id' ELSE 'farm_id' END;
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
  IF global_read THEN
    EXECUTE format('CREATE POLICY tenant_read ON %s FOR SELECT TO farmops_app USING '
                   '(%I = current_farm_id() OR (%I = global_farm_id() AND current_farm_id() IS NOT NULL))',
                   tbl, key, key);
    EXECUTE format('CREATE POLICY tenant_insert ON %s FOR INSERT TO farmops_app WITH CHECK (%I = current_farm_id())', tbl, key);
    EXECUTE format('CREATE POLICY tenant_update ON %s FOR UPDATE TO farmops_app USING (%I = current_farm_id()) '
                   'WITH CHECK (%I = current_farm_id())', tbl, key, key);
    EXECUTE format('CREATE POLICY tenant_delete ON %s FOR DELETE TO farmops_app USING (%I = current_farm_id())', tbl, key);
  ELSE
    EXECUTE format('CREATE POLICY tenant ON %s TO farmops_app USING (%I = current_farm_id()) '
                   'WITH CHECK (%I = current_farm_id())', tbl, key, key);
  END IF;
  EXECUTE format('CREATE POLICY operator ON %s TO %I USING (true) WITH CHECK (true)', tbl, current_user);
  EXECUTE format('GRANT %s ON %s TO farmops_app', app_privileges, tbl);
END $fn$;
REVOKE ALL ON FUNCTION enable_tenant_rls(regclass, text, boolean) FROM PUBLIC;

-- farms: the application sees only its own farm's row and may change only the balance.
SELECT enable_tenant_rls('farms', 'SELECT, UPDATE (credit_balance)');
SELECT enable_tenant_rls('farm_members', 'SELECT');
