-- chain_append in one statement (#19's benchmark: the chain's cost on a hold, on the hot farm).
--
-- Every chained write appends under the farm row's lock, so whatever an append costs, every
-- other writer of that farm waits for. 0090's chain_append ran three statements after the lock
-- (read the head, compute, insert) and, being SECURITY DEFINER with its own search_path, saved
-- and restored the settings on every call. Now:
-- - the head is read, the next entry computed and inserted in one INSERT ... SELECT;
-- - it runs with its caller's rights and search_path: its only callers are the chain triggers,
--   which are SECURITY DEFINER with 0092's `public, pg_temp`; the application role still cannot
--   call it (no EXECUTE, as before) nor insert into evidence_chain.
-- The entries are the same: seq = the head's seq + 1 (1 for the first), hash = SHA-256(the
-- head's hash, or 32 zero bytes, || UTF-8 of evidence_canonical(...)); the golden vectors and
-- the tampering tests check them.
--
-- Replace-only: the same signature, result and owner.

CREATE OR REPLACE FUNCTION chain_append(farm uuid, entry_kind text, source text, vals text[])
  RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  s bigint;
BEGIN
  PERFORM 1 FROM farms f WHERE f.id = farm FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'farm % does not exist', farm USING ERRCODE = 'no_data_found';
  END IF;
  INSERT INTO evidence_chain (farm_id, seq, kind, source_id, hash)
  SELECT farm, head.seq + 1, entry_kind, source,
         sha256(head.hash
                || convert_to(evidence_canonical(farm, head.seq + 1, entry_kind, source, vals), 'UTF8'))
    FROM (SELECT coalesce(last.seq, 0) AS seq,
                 coalesce(last.hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea) AS hash
            FROM (SELECT 1) one
            LEFT JOIN LATERAL (SELECT c.seq, c.hash FROM evidence_chain c
                                WHERE c.farm_id = farm ORDER BY c.seq DESC LIMIT 1) last ON true) head
  RETURNING seq INTO s;
  RETURN s;
END $$;
ALTER FUNCTION chain_append(uuid, text, text, text[]) SECURITY INVOKER;
ALTER FUNCTION chain_append(uuid, text, text, text[]) RESET search_path;
