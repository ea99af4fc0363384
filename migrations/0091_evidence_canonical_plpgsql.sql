-- The evidence chain's canonical text, built in PL/pgSQL (#19's benchmark: a hold on the hot
-- farm within 15% of the same run without the chain). 0090's evidence_canonical() is a SQL
-- function with a subquery (unnest ... string_agg), which cannot be inlined, so every chained
-- write ran a small query for it under the farm row's lock: about 31 µs of the ~80 µs an entry
-- costs. The same text in a loop costs about 6 µs.
--
-- The text is byte for byte the same (docs/evidence-chain.md; the golden vectors test the
-- database's encoding): the header lines, then for each of the kind's field names in order the
-- name alone when the value is null, else `name=escaped value`, each line ending in a newline.
-- As before, values beyond the kind's names are ignored, a name beyond the values is a null
-- value, an unknown kind has no field lines, and a null kind or source makes the text null.
-- Replace-only: same signature, volatility and owner; nothing else changes.

CREATE OR REPLACE FUNCTION evidence_canonical(farm uuid, seq bigint, kind text, source text, vals text[])
  RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  names text[] := evidence_keys(kind);
  t text := 'farmops-evidence/1' || E'\n'
         || 'farm=' || farm::text || E'\n'
         || 'seq=' || seq::text || E'\n'
         || 'kind=' || evidence_escape(kind) || E'\n'
         || 'source=' || evidence_escape(source) || E'\n';
BEGIN
  FOR i IN 1 .. coalesce(array_length(names, 1), 0) LOOP
    IF vals[i] IS NULL THEN
      t := t || names[i] || E'\n';
    ELSE
      t := t || names[i] || '=' || evidence_escape(vals[i]) || E'\n';
    END IF;
  END LOOP;
  RETURN t;
END $$;
