-- The database's functions no longer resolve table names in the caller's temporary schema
-- (#14: the application role cannot mint credits).
--
-- PostgreSQL searches the session's temporary schema (pg_temp) for tables BEFORE the schemas of
-- search_path unless search_path names pg_temp itself. The functions here were declared with
-- `SET search_path = public`, so a SECURITY DEFINER door called by the application role, and
-- every function and commit-time check it runs as the owner, read and wrote whatever table the
-- caller had created under the same name in pg_temp. The application role may create temporary
-- tables (bootstrap grants it TEMPORARY, and PUBLIC has it by default). Tried as the
-- application role before this migration, in one transaction that COMMITTED: temporary
-- ai_runs, credit_lot_moves and credit_ledger tables granted to the owner, holding a made-up
-- open run of 1,000 credits, its hold move and a ledger row ending at the raised balance; then
-- credit_settle_run on that run. The door "closed" the fake run and refunded its hold into the
-- real farm row and the real credit lot; its settle leg went to the fake ledger, and the
-- commit-time checks compared the real balance with the fake ledger: +1,000 credits, with no
-- leg in the real ledger (shared/tests/governance/holds.rs tests it).
--
-- The fix is PostgreSQL's own advice for SECURITY DEFINER functions ("Writing SECURITY DEFINER
-- Functions Safely"): pg_temp last in the function's search_path. Every function of ours that
-- sets search_path (all the doors, the checks and their helpers) now sets `public, pg_temp`;
-- a function without the setting runs with its caller's path, which is then one of these when
-- it runs as the owner. Functions are never looked up in pg_temp. Migrations after this one
-- declare `SET search_path = public, pg_temp`; a test refuses a function of ours that sets
-- another path.
--
-- Replace-only: the same functions, bodies and grants; only their search_path setting changes.

DO $$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN
    SELECT p.oid::regprocedure
      FROM pg_proc p
     WHERE p.pronamespace = 'public'::regnamespace
       AND p.proowner = (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user)
       AND (p.prosecdef OR EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%'))
       -- an extension's functions (pgvector's) are the extension's
       AND NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('ALTER FUNCTION %s SET search_path = public, pg_temp', f);
  END LOOP;
END $$;
