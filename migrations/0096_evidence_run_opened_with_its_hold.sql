-- A run's opening and its first hold are one chain entry (#19's benchmark: a hold on the hot
-- farm within 15% of the same run without the chain).
--
-- Every run is opened with a hold: credits_reserved > 0, and the commit-time check
-- ai_run_check_legs makes its hold legs add up to it, so every run has at least one `reserve`
-- leg, written in the transaction that opens it. 0090 chained the opening (`run_opened`, from
-- the ai_runs insert) and that leg (`ledger`) as two entries, so a hold appended twice under the
-- farm row's lock. From now on the run's first `reserve` leg is chained once, as the new kind
-- `run_opened_with_hold`: the run's opening fields, then the leg's (docs/evidence-chain.md).
-- Every later leg of the run (top-ups, the settle or expire) stays a `ledger` entry.
--
-- Expand-only for the chain: the entries already written keep their kinds and hashes. A run
-- chained as `run_opened` (before this migration) is re-derived by evidence_sources() as before;
-- every other run as `run_opened_with_hold`, its first reserve leg no longer on its own.
--
-- Behaviour change: the ai_runs insert trigger is dropped. A run's opening is chained when its
-- first reserve leg is inserted, so a run written with no leg (which the commit-time checks
-- refuse anyway) has no opening entry, and the export names it unchained.

ALTER TABLE evidence_chain DROP CONSTRAINT evidence_chain_kind_check;
ALTER TABLE evidence_chain ADD CONSTRAINT evidence_chain_kind_check
  CHECK (kind IN ('ledger', 'run_opened', 'run_opened_with_hold', 'run_closed', 'draft_decided',
                  'recommendation_decided', 'record')) NOT VALID;
ALTER TABLE evidence_chain VALIDATE CONSTRAINT evidence_chain_kind_check;

CREATE OR REPLACE FUNCTION evidence_keys(kind text) RETURNS text[]
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE kind
    WHEN 'ledger' THEN ARRAY['id', 'entry_type', 'delta', 'balance_after', 'ai_run_id', 'lot_id',
                             'reason', 'actor', 'created_at']
    WHEN 'run_opened' THEN ARRAY['id', 'feature', 'model', 'user_id', 'created_at']
    WHEN 'run_opened_with_hold' THEN ARRAY['id', 'feature', 'model', 'user_id', 'created_at',
                                           'hold_id', 'hold_delta', 'hold_balance_after',
                                           'hold_lot_id', 'hold_reason', 'hold_actor',
                                           'hold_created_at']
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

-- The run's opening fields, then its first hold leg's (a missing leg: nulls, so a re-derived
-- entry of a run whose leg was deleted no longer hashes to its chain entry).
CREATE FUNCTION evidence_run_opened_with_hold_fields(r ai_runs, l credit_ledger) RETURNS text[]
  LANGUAGE sql STABLE AS $$
  SELECT ARRAY[r.id::text, r.feature, r.model, r.user_id, evidence_ts(r.created_at),
               l.id::text, l.delta::text, l.balance_after::text, l.lot_id::text, l.reason, l.actor,
               evidence_ts(l.created_at)]
$$;

DROP TRIGGER evidence_chain_opened ON ai_runs;

-- As 0090's, but a ledger row that is its run's first reserve leg is chained with the run's
-- opening, and ai_runs fires only for a run's closing.
CREATE OR REPLACE FUNCTION evidence_chain_trigger() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  run ai_runs;
BEGIN
  CASE TG_TABLE_NAME
    WHEN 'credit_ledger' THEN
      IF NEW.entry_type = 'reserve' THEN
        SELECT r.* INTO run FROM ai_runs r
         WHERE r.id = NEW.ai_run_id AND r.farm_id = NEW.farm_id
           AND NOT EXISTS (SELECT 1 FROM credit_ledger l
                            WHERE l.farm_id = NEW.farm_id AND l.ai_run_id = NEW.ai_run_id
                              AND l.entry_type = 'reserve' AND l.id <> NEW.id);
        IF FOUND THEN
          PERFORM chain_append(NEW.farm_id, 'run_opened_with_hold', run.id::text,
                               evidence_run_opened_with_hold_fields(run, NEW));
          RETURN NULL;
        END IF;
      END IF;
      PERFORM chain_append(NEW.farm_id, 'ledger', NEW.id::text, evidence_ledger_fields(NEW));
    WHEN 'ai_runs' THEN
      PERFORM chain_append(NEW.farm_id, 'run_closed', NEW.id::text, evidence_run_closed_fields(NEW));
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

-- The live source rows, as 0090's, with each run re-derived the way it was chained: a run with
-- a `run_opened` entry (chained before this migration) as `run_opened` and its legs as `ledger`;
-- every other run as `run_opened_with_hold` with its first reserve leg (the lowest id: legs of
-- one run are written under the farm row's lock, in id order), that leg not on its own.
CREATE OR REPLACE FUNCTION evidence_sources(farm uuid)
  RETURNS TABLE (kind text, source_id text, vals text[])
  LANGUAGE sql STABLE AS $$
  WITH runs AS (
    SELECT r, EXISTS (SELECT 1 FROM evidence_chain c
                       WHERE c.farm_id = farm AND c.kind = 'run_opened'
                         AND c.source_id = r.id::text) AS legacy
      FROM ai_runs r WHERE r.farm_id = farm),
  first_holds AS (
    SELECT DISTINCT ON (l.ai_run_id) l
      FROM credit_ledger l
     WHERE l.farm_id = farm AND l.entry_type = 'reserve' AND l.ai_run_id IS NOT NULL
     ORDER BY l.ai_run_id, l.id),
  combined AS (
    SELECT (h.l).id AS leg_id FROM first_holds h JOIN runs ON (runs.r).id = (h.l).ai_run_id
     WHERE NOT runs.legacy)
  SELECT 'ledger', l.id::text, evidence_ledger_fields(l) FROM credit_ledger l
   WHERE l.farm_id = farm AND l.id NOT IN (SELECT leg_id FROM combined)
  UNION ALL
  SELECT 'run_opened', (runs.r).id::text, evidence_run_opened_fields(runs.r) FROM runs
   WHERE runs.legacy
  UNION ALL
  SELECT 'run_opened_with_hold', (runs.r).id::text,
         evidence_run_opened_with_hold_fields(runs.r, h.l)
    FROM runs LEFT JOIN first_holds h ON (h.l).ai_run_id = (runs.r).id
   WHERE NOT runs.legacy
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
