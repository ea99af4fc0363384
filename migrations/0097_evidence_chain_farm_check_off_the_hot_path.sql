-- The chain's farm reference checked where it costs nothing on a hold (#19's benchmark: a hold
-- on the hot farm within 15% of the same run without the chain).
--
-- evidence_chain.farm_id REFERENCES farms ran a referential check (a query locking the farm
-- row FOR KEY SHARE) after every append, under the farm row's lock, though chain_append has
-- just locked that row and refuses a farm that does not exist. On the hot farm at 32 clients
-- the check was about 5% of a hold's throughput (pgbench, the same database with and without
-- it, alternated).
--
-- What the foreign key guaranteed is kept, each half where it is cheap:
-- - no entry for a farm that does not exist: chain_append (the only writer the roles can
--   reach; the application role cannot call it) locks the farm row first and raises
--   no_data_found when there is none;
-- - no farm deleted from under its chain: a BEFORE DELETE trigger on farms refuses it
--   (foreign_key_violation, as the foreign key did). It fires only when a farm is deleted.
--
-- Contract-only for the constraint; the trigger is new.

ALTER TABLE evidence_chain DROP CONSTRAINT evidence_chain_farm_id_fkey;

CREATE FUNCTION farms_keep_their_chain() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM evidence_chain c WHERE c.farm_id = OLD.id) THEN
    RAISE EXCEPTION 'farm % has an evidence chain and cannot be deleted', OLD.id
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN OLD;
END $$;
REVOKE ALL ON FUNCTION farms_keep_their_chain() FROM PUBLIC;

CREATE TRIGGER farms_keep_their_chain BEFORE DELETE ON farms
  FOR EACH ROW EXECUTE FUNCTION farms_keep_their_chain();
