DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'farmops_owner') THEN
    CREATE ROLE farmops_owner LOGIN NOSUPERUSER NOBYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'farmops_app') THEN
    CREATE ROLE farmops_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'farmops_billing') THEN
    CREATE ROLE farmops_billing LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
  END IF;
  -- migrations 0001 and 0081 create farmops_app and farmops_billing NOLOGIN when they are
  -- missing: the functions log in as them
  ALTER ROLE farmops_app LOGIN;
  ALTER ROLE farmops_billing LOGIN;
  IF NOT pg_has_role(current_user, 'farmops_owner', 'MEMBER') THEN
    EXECUTE format('GRANT farmops_owner TO %I', current_user);
  END IF;
  -- RDS only: IAM authentication for both roles (guarded: no such role elsewhere)
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam') THEN
    GRANT rds_iam TO farmops_app;
    GRANT rds_iam TO farmops_billing;
    GRANT rds_iam TO farmops_owner;
  END IF;
  EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO farmops_app', current_database());
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO farmops_billing', current_database());
  EXECUTE format('GRANT CONNECT, CREATE ON DATABASE %I TO farmops_owner', current_database());
END $$;
GRANT USAGE, CREATE ON SCHEMA public TO farmops_owner;
ALTER ROLE farmops_app SET statement_timeout = '15s';
ALTER ROLE farmops_app SET idle_in_transaction_session_timeout = '30s';
ALTER ROLE farmops_billing SET statement_timeout = '15s';
ALTER ROLE farmops_billing SET idle_in_transaction_session_timeout = '30s';
CREATE EXTENSION IF NOT EXISTS vector;
