-- Tamper-evident evidence (#19): a per-farm hash chain over every ledger leg, run opening and
-- closing, draft and recommendation decision and AI-written farm record, and the signed
-- checkpoints of its head. Expand-only: new columns with defaults, new tables, new functions
-- and AFTER triggers that refuse nothing.
--
-- Every chained write appends through chain_append(), in the same transaction as the write: it
-- takes the farm row's lock (FOR NO KEY UPDATE, the lock the credit doors already hold when they
-- write a leg, so a hold takes no new lock; decisions and AI records serialise on it), reads the
-- farm's last entry by index and appends the next one to the append-only `evidence_chain`. One
-- farm's entries therefore form one linear sequence with no gap and no fork whatever the
-- concurrency. The head is the farm's last entry. (It is not kept on the farm row: updating that
-- row once per entry makes a transaction that writes n entries walk n row versions per update,
-- quadratic for a bulk history; re-locking a row the transaction already holds writes nothing.)
--
-- entry hash = SHA-256(previous hash || UTF-8 of the entry's canonical text), the first
-- previous hash being 32 zero bytes. The canonical text is specified byte for byte in
-- docs/evidence-chain.md; evidence_canonical() below is its one definition in SQL and
-- farmops::evidence::chain its one definition in Rust (golden vectors test both).

CREATE TABLE evidence_chain (
  farm_id     uuid NOT NULL REFERENCES farms (id),
  seq         bigint NOT NULL CHECK (seq > 0),
  kind        text NOT NULL CHECK (kind IN ('ledger', 'run_opened', 'run_closed', 'draft_decided',
                                             'recommendation_decided', 'record')),
  source_id   text NOT NULL,
  hash        bytea NOT NULL CHECK (length(hash) = 32),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (farm_id, seq)
);
CREATE UNIQUE INDEX evidence_chain_source ON evidence_chain (farm_id, kind, source_id);

CREATE TRIGGER evidence_chain_append_only BEFORE UPDATE OR DELETE ON evidence_chain
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER evidence_chain_no_truncate BEFORE TRUNCATE ON evidence_chain
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
SELECT enable_tenant_rls('evidence_chain', 'SELECT');

-- The value encodings of the canonical text.
CREATE FUNCTION evidence_ts(t timestamptz) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
CREATE FUNCTION evidence_escape(v text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT replace(replace(replace(v, E'\\', E'\\\\'), E'\n', E'\\n'), E'\r', E'\\r')
$$;

-- The field names of each kind, in their fixed order.
CREATE FUNCTION evidence_keys(kind text) RETURNS text[]
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE kind
    WHEN 'ledger' THEN ARRAY['id', 'entry_type', 'delta', 'balance_after', 'ai_run_id', 'lot_id',
                             'reason', 'actor', 'created_at']
    WHEN 'run_opened' THEN ARRAY['id', 'feature', 'model', 'user_id', 'created_at']
    WHEN 'run_closed' THEN ARRAY['id', 'status', 'credits_reserved', 'credits_charged',
                                 'input_tokens', 'output_tokens', 'latency_ms', 'response_summary',
                                 'error', 'finished_at']
    WHEN 'draft_decided' THEN ARRAY['id', 'ai_run_id', 'record_type', 'payload', 'status',
                                    'edited_payload', 'decided_by', 'decided_at', 'decision_note',
                                    'record_id']
    WHEN 'recommendation_decided' THEN ARRAY['id', 'ai_run_id', 'title', 'body', 'status',
                                             'decided_by', 'decided_at', 'decision_note']
    WHEN 'record' THEN ARRAY['table', 'id', 'provenance', 'draft_id', 'ai_run_id', 'occurred_on',
                             'created_by', 'confirmed_by', 'confirmed_at', 'created_at', 'data']
  END
$$;

-- The canonical text of one entry (docs/evidence-chain.md).
CREATE FUNCTION evidence_canonical(farm uuid, seq bigint, kind text, source text, vals text[])
  RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT 'farmops-evidence/1' || E'\n'
      || 'farm=' || farm::text || E'\n'
      || 'seq=' || seq::text || E'\n'
      || 'kind=' || evidence_escape(kind) || E'\n'
      || 'source=' || evidence_escape(source) || E'\n'
      || coalesce((SELECT string_agg(CASE WHEN u.v IS NULL THEN u.k
                                          ELSE u.k || '=' || evidence_escape(u.v) END || E'\n',
                                     '' ORDER BY u.i)
                     FROM unnest(evidence_keys(kind), vals) WITH ORDINALITY AS u(k, v, i)), '')
$$;

-- The field values of each kind, from the row (the triggers pass NEW; the export passes the
-- live row, so an edited source row no longer hashes to its chain entry).
CREATE FUNCTION evidence_ledger_fields(l credit_ledger) RETURNS text[]
  LANGUAGE sql STABLE AS $$
  SELECT ARRAY[l.id::text, l.entry_type, l.delta::text, l.balance_after::text, l.ai_run_id::text,
               l.lot_id::text, l.reason, l.actor, evidence_ts(l.created_at)]
$$;
CREATE FUNCTION evidence_run_opened_fields(r ai_runs) RETURNS text[]
  LANGUAGE sql STABLE AS $$
  SELECT ARRAY[r.id::text, r.feature, r.model, r.user_id, evidence_ts(r.created_at)]
$$;
CREATE FUNCTION evidence_run_closed_fields(r ai_runs) RETURNS text[]
  LANGUAGE sql STABLE AS $$
  SELECT ARRAY[r.id::text, r.status, r.credits_reserved::text, r.credits_charged::text,
               r.input_tokens::text, r.output_tokens::text, r.latency_ms::text,
               r.response_summary, r.error, evidence_ts(r.finished_at)]
$$;
CREATE FUNCTION evidence_draft_fields(d assistant_drafts) RETURNS text[]
  LANGUAGE sql STABLE AS $$
  SELECT ARRAY[d.id::text, d.ai_run_id::text, d.record_type, d.payload::text, d.status,
               d.edited_payload::text, d.decided_by, evidence_ts(d.decided_at), d.decision_note,
               d.record_id::text]
$$;
CREATE FUNCTION evidence_recommendation_fields(r ai_recommendations) RETURNS text[]
  LANGUAGE sql STABLE AS $$
  SELECT ARRAY[r.id::text, r.ai_run_id::text, r.title, r.body, r.status, r.decided_by,
               evidence_ts(r.decided_at), r.decision_note]
$$;
-- A record of any of the nine tables, as jsonb (to_jsonb of the row): the provenance columns
-- one by one, the table's own columns as the jsonb text of the rest (PostgreSQL's jsonb text is
-- deterministic: keys sorted, numerics with their scale, dates as YYYY-MM-DD; no timestamptz).
CREATE FUNCTION evidence_record_fields(tbl text, r jsonb) RETURNS text[]
  LANGUAGE sql STABLE AS $$
  SELECT ARRAY[tbl, r->>'id', r->>'source', r->>'draft_id', r->>'ai_run_id', r->>'occurred_on',
               r->>'created_by', r->>'confirmed_by',
               evidence_ts((r->>'confirmed_at')::timestamptz),
               evidence_ts((r->>'created_at')::timestamptz),
               (r - ARRAY['farm_id', 'id', 'source', 'draft_id', 'ai_run_id', 'occurred_on',
                          'created_by', 'confirmed_by', 'confirmed_at', 'created_at'])::text]
$$;

-- Appends one entry to the farm's chain, sequenced by the farm row's lock. Only the triggers
-- below call it.
CREATE FUNCTION chain_append(farm uuid, entry_kind text, source text, vals text[])
  RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  s bigint;
  h bytea;
BEGIN
  PERFORM 1 FROM farms f WHERE f.id = farm FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'farm % does not exist', farm USING ERRCODE = 'no_data_found';
  END IF;
  SELECT c.seq, c.hash INTO s, h FROM evidence_chain c
   WHERE c.farm_id = farm ORDER BY c.seq DESC LIMIT 1;
  s := coalesce(s, 0) + 1;
  h := sha256(coalesce(h, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
              || convert_to(evidence_canonical(farm, s, entry_kind, source, vals), 'UTF8'));
  INSERT INTO evidence_chain (farm_id, seq, kind, source_id, hash)
  VALUES (farm, s, entry_kind, source, h);
  RETURN s;
END $$;
REVOKE ALL ON FUNCTION chain_append(uuid, text, text, text[]) FROM PUBLIC;

-- The triggers (plain AFTER ROW triggers, not deferred: the entry is sequenced while the
-- writer holds the farm row). SECURITY DEFINER: they reach chain_append, which the
-- application role cannot call itself.
CREATE FUNCTION evidence_chain_trigger() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  CASE TG_TABLE_NAME
    WHEN 'credit_ledger' THEN
      PERFORM chain_append(NEW.farm_id, 'ledger', NEW.id::text, evidence_ledger_fields(NEW));
    WHEN 'ai_runs' THEN
      IF TG_OP = 'INSERT' THEN
        PERFORM chain_append(NEW.farm_id, 'run_opened', NEW.id::text, evidence_run_opened_fields(NEW));
      ELSE
        PERFORM chain_append(NEW.farm_id, 'run_closed', NEW.id::text, evidence_run_closed_fields(NEW));
      END IF;
    WHEN 'assistant_drafts' THEN
      PERFORM chain_append(NEW.farm_id, 'draft_decided', NEW.id::text, evidence_draft_fields(NEW));
    WHEN 'ai_recommendations' THEN
      PERFORM chain_append(NEW.farm_id, 'recommendation_decided', NEW.id::text,
                           evidence_recommendation_fields(NEW));
    ELSE
      PERFORM chain_append(NEW.farm_id, 'record', TG_TABLE_NAME || '/' || NEW.id::text,
                           evidence_record_fields(TG_TABLE_NAME, to_jsonb(NEW)));
  END CASE;
  RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION evidence_chain_trigger() FROM PUBLIC;

CREATE TRIGGER evidence_chain AFTER INSERT ON credit_ledger
  FOR EACH ROW EXECUTE FUNCTION evidence_chain_trigger();
CREATE TRIGGER evidence_chain_opened AFTER INSERT ON ai_runs
  FOR EACH ROW EXECUTE FUNCTION evidence_chain_trigger();
CREATE TRIGGER evidence_chain_closed AFTER UPDATE OF status ON ai_runs
  FOR EACH ROW WHEN (OLD.status = 'reserved' AND NEW.status <> 'reserved')
  EXECUTE FUNCTION evidence_chain_trigger();
CREATE TRIGGER evidence_chain AFTER UPDATE OF status ON assistant_drafts
  FOR EACH ROW WHEN (OLD.status = 'pending' AND NEW.status <> 'pending')
  EXECUTE FUNCTION evidence_chain_trigger();
CREATE TRIGGER evidence_chain AFTER UPDATE OF status ON ai_recommendations
  FOR EACH ROW WHEN (OLD.status = 'pending' AND NEW.status <> 'pending')
  EXECUTE FUNCTION evidence_chain_trigger();
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['mortality_events', 'feed_logs', 'sales', 'expenses', 'water_logs',
                           'weight_records', 'symptom_reports', 'notes', 'tasks'] LOOP
    EXECUTE format('CREATE TRIGGER evidence_chain AFTER INSERT ON %I FOR EACH ROW '
                   'WHEN (NEW.source <> %L) EXECUTE FUNCTION evidence_chain_trigger()', t, 'manual');
  END LOOP;
END $$;

-- The live source rows of a farm, each with the kind, source id and field values its chain
-- entry was computed from (the export re-derives every entry from these, not from a copy).
-- Invoker's rights: the caller's row-level security applies. Nothing here depends on the
-- session's settings (timestamps go through evidence_ts, jsonb text is fixed).
CREATE FUNCTION evidence_sources(farm uuid)
  RETURNS TABLE (kind text, source_id text, vals text[])
  LANGUAGE sql STABLE AS $$
  SELECT 'ledger', l.id::text, evidence_ledger_fields(l) FROM credit_ledger l WHERE l.farm_id = farm
  UNION ALL
  SELECT 'run_opened', r.id::text, evidence_run_opened_fields(r) FROM ai_runs r WHERE r.farm_id = farm
  UNION ALL
  SELECT 'run_closed', r.id::text, evidence_run_closed_fields(r) FROM ai_runs r
   WHERE r.farm_id = farm AND r.status <> 'reserved'
  UNION ALL
  SELECT 'draft_decided', d.id::text, evidence_draft_fields(d) FROM assistant_drafts d
   WHERE d.farm_id = farm AND d.status <> 'pending'
  UNION ALL
  SELECT 'recommendation_decided', r.id::text, evidence_recommendation_fields(r)
    FROM ai_recommendations r WHERE r.farm_id = farm AND r.status <> 'pending'
  UNION ALL
  SELECT 'record', 'mortality_events/' || x.id, evidence_record_fields('mortality_events', to_jsonb(x))
    FROM mortality_events x WHERE x.farm_id = farm AND x.source <> 'manual'
  UNION ALL
  SELECT 'record', 'feed_logs/' || x.id, evidence_record_fields('feed_logs', to_jsonb(x))
    FROM feed_logs x WHERE x.farm_id = farm AND x.source <> 'manual'
  UNION ALL
  SELECT 'record', 'sales/' || x.id, evidence_record_fields('sales', to_jsonb(x))
    FROM sales x WHERE x.farm_id = farm AND x.source <> 'manual'
  UNION ALL
  SELECT 'record', 'expenses/' || x.id, evidence_record_fields('expenses', to_jsonb(x))
    FROM expenses x WHERE x.farm_id = farm AND x.source <> 'manual'
  UNION ALL
  SELECT 'record', 'water_logs/' || x.id, evidence_record_fields('water_logs', to_jsonb(x))
    FROM water_logs x WHERE x.farm_id = farm AND x.source <> 'manual'
  UNION ALL
  SELECT 'record', 'weight_records/' || x.id, evidence_record_fields('weight_records', to_jsonb(x))
    FROM weight_records x WHERE x.farm_id = farm AND x.source <> 'manual'
  UNION ALL
  SELECT 'record', 'symptom_reports/' || x.id, evidence_record_fields('symptom_reports', to_jsonb(x))
    FROM symptom_reports x WHERE x.farm_id = farm AND x.source <> 'manual'
  UNION ALL
  SELECT 'record', 'notes/' || x.id, evidence_record_fields('notes', to_jsonb(x))
    FROM notes x WHERE x.farm_id = farm AND x.source <> 'manual'
  UNION ALL
  SELECT 'record', 'tasks/' || x.id, evidence_record_fields('tasks', to_jsonb(x))
    FROM tasks x WHERE x.farm_id = farm AND x.source <> 'manual'
$$;

-- Signed checkpoints of a farm's chain head: append-only, written by reconcile through
-- evidence_record_checkpoint(), which accepts only the (seq, hash) the chain holds at that
-- seq, past the farm's last checkpoint. The signature itself is checked offline
-- (`farmops verify`): the database holds no key.
CREATE TABLE evidence_checkpoints (
  farm_id          uuid NOT NULL REFERENCES farms (id),
  seq              bigint NOT NULL CHECK (seq > 0),
  hash             bytea NOT NULL CHECK (length(hash) = 32),
  signed_at        timestamptz NOT NULL,
  key_fingerprint  text NOT NULL CHECK (key_fingerprint ~ '^[0-9a-f]{64}$'),
  algorithm        text NOT NULL CHECK (algorithm = 'ECDSA_SHA_256'),
  signature        bytea NOT NULL CHECK (length(signature) BETWEEN 8 AND 80),
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (farm_id, seq),
  FOREIGN KEY (farm_id, seq) REFERENCES evidence_chain (farm_id, seq)
);
CREATE TRIGGER evidence_checkpoints_append_only BEFORE UPDATE OR DELETE ON evidence_checkpoints
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER evidence_checkpoints_no_truncate BEFORE TRUNCATE ON evidence_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
SELECT enable_tenant_rls('evidence_checkpoints', 'SELECT');

CREATE FUNCTION evidence_record_checkpoint(farm uuid, at_seq bigint, at_hash bytea,
                                           at_time timestamptz, fingerprint text, sig bytea)
  RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  last bigint;
BEGIN
  PERFORM credit_require_tenant(farm);
  IF NOT EXISTS (SELECT 1 FROM evidence_chain c
                  WHERE c.farm_id = farm AND c.seq = at_seq AND c.hash = at_hash) THEN
    RAISE EXCEPTION 'farm % has no chain entry % with that hash', farm, at_seq
      USING ERRCODE = 'check_violation';
  END IF;
  SELECT max(c.seq) INTO last FROM evidence_checkpoints c WHERE c.farm_id = farm;
  IF last IS NOT NULL AND at_seq <= last THEN
    RETURN false;   -- already covered: nothing to record
  END IF;
  INSERT INTO evidence_checkpoints (farm_id, seq, hash, signed_at, key_fingerprint, algorithm, signature)
  VALUES (farm, at_seq, at_hash, at_time, fingerprint, 'ECDSA_SHA_256', sig);
  RETURN true;
END $$;
REVOKE ALL ON FUNCTION evidence_record_checkpoint(uuid, bigint, bytea, timestamptz, text, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION evidence_record_checkpoint(uuid, bigint, bytea, timestamptz, text, bytea) TO farmops_app;

-- Farms whose chain head is past their last signed checkpoint (ids only), for reconcile.
CREATE FUNCTION farms_due_evidence_checkpoint() RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT f.id FROM farms f
   WHERE coalesce((SELECT max(e.seq) FROM evidence_chain e WHERE e.farm_id = f.id), 0)
         > coalesce((SELECT max(c.seq) FROM evidence_checkpoints c WHERE c.farm_id = f.id), 0)
$$;
REVOKE ALL ON FUNCTION farms_due_evidence_checkpoint() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION farms_due_evidence_checkpoint() TO farmops_app;
GRANT EXECUTE ON FUNCTION evidence_sources(uuid) TO farmops_app;

-- The rows written before this migration, chained once in the order they happened (time, then
-- opening before legs before closing before decisions before records, then source id).
DO $$
DECLARE
  e record;
BEGIN
  FOR e IN
    SELECT s.farm, s.kind, s.source_id, s.vals FROM (
      SELECT l.farm_id AS farm, 'ledger' AS kind, l.id::text AS source_id,
             evidence_ledger_fields(l) AS vals, l.created_at AS at, 1 AS rank, l.id AS n
        FROM credit_ledger l
      UNION ALL
      SELECT r.farm_id, 'run_opened', r.id::text, evidence_run_opened_fields(r), r.created_at, 0, 0
        FROM ai_runs r
      UNION ALL
      SELECT r.farm_id, 'run_closed', r.id::text, evidence_run_closed_fields(r), r.finished_at, 2, 0
        FROM ai_runs r WHERE r.status <> 'reserved'
      UNION ALL
      SELECT d.farm_id, 'draft_decided', d.id::text, evidence_draft_fields(d), d.decided_at, 3, 0
        FROM assistant_drafts d WHERE d.status <> 'pending'
      UNION ALL
      SELECT r.farm_id, 'recommendation_decided', r.id::text, evidence_recommendation_fields(r),
             r.decided_at, 5, 0
        FROM ai_recommendations r WHERE r.status <> 'pending'
    ) s ORDER BY s.farm, s.at, s.rank, s.n, s.source_id
  LOOP
    PERFORM chain_append(e.farm, e.kind, e.source_id, e.vals);
  END LOOP;
  FOR e IN
    SELECT f.id AS farm, x.kind, x.source_id, x.vals
      FROM farms f, LATERAL evidence_sources(f.id) x
     WHERE x.kind = 'record'
     ORDER BY x.source_id
  LOOP
    PERFORM chain_append(e.farm, e.kind, e.source_id, e.vals);
  END LOOP;
END $$;
