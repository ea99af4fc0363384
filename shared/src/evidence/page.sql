-- One page of a farm's runs, newest first (keyset on created_at, id), with everything matched
-- to each run: ledger legs, drafts and their decisions, recommendations, evals, feedback.
-- One statement: the children are correlated subqueries over a bounded page (<= 201 runs),
-- each served by an index on (farm_id, ai_run_id).
-- $1 farm, $2 feature, $3 status, $4 from (inclusive), $5 to (exclusive),
-- $6 cursor created_at, $7 cursor id, $8 limit (+1 to know if there is a next page)
WITH page AS (
  SELECT r.id, r.feature, r.model, r.user_id, r.status, r.credits_reserved, r.credits_charged,
         r.input_tokens, r.output_tokens, r.latency_ms, r.request_summary, r.response_summary,
         r.error, r.created_at, r.finished_at
    FROM ai_runs r
   WHERE r.farm_id = $1
     AND ($2::text IS NULL OR r.feature = $2)
     AND ($3::text IS NULL OR r.status = $3)
     AND ($4::timestamptz IS NULL OR r.created_at >= $4)
     AND ($5::timestamptz IS NULL OR r.created_at < $5)
     AND ($6::timestamptz IS NULL OR (r.created_at, r.id) < ($6, $7))
   ORDER BY r.created_at DESC, r.id DESC
   LIMIT $8)
SELECT p.id, p.feature, p.model, p.user_id, p.status, p.credits_reserved, p.credits_charged,
       p.input_tokens, p.output_tokens, p.latency_ms, p.request_summary, p.response_summary,
       p.error, p.created_at, p.finished_at,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                 'id', l.id, 'entry_type', l.entry_type, 'delta', l.delta,
                 'balance_after', l.balance_after, 'actor', l.actor, 'reason', l.reason,
                 'created_at', l.created_at) ORDER BY l.id), '[]'::jsonb)
          FROM credit_ledger l
         WHERE l.farm_id = $1 AND l.ai_run_id = p.id) AS legs,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                 'id', d.id, 'record_type', d.record_type, 'status', d.status,
                 'summary', d.summary, 'payload', d.payload, 'edited_payload', d.edited_payload,
                 'created_by', d.created_by, 'created_at', d.created_at,
                 'decided_by', d.decided_by, 'decided_at', d.decided_at,
                 'decision_note', d.decision_note, 'record_id', d.record_id)
                 ORDER BY d.created_at, d.id), '[]'::jsonb)
          FROM assistant_drafts d
         WHERE d.farm_id = $1 AND d.ai_run_id = p.id) AS drafts,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                 'id', c.id, 'title', c.title, 'body', c.body, 'status', c.status,
                 'created_by', c.created_by, 'created_at', c.created_at,
                 'decided_by', c.decided_by, 'decided_at', c.decided_at,
                 'decision_note', c.decision_note) ORDER BY c.created_at, c.id), '[]'::jsonb)
          FROM ai_recommendations c
         WHERE c.farm_id = $1 AND c.ai_run_id = p.id) AS recommendations,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                 'id', e.id, 'name', e.name, 'passed', e.passed, 'details', e.details,
                 'created_at', e.created_at) ORDER BY e.created_at, e.id), '[]'::jsonb)
          FROM ai_evals e
         WHERE e.farm_id = $1 AND e.ai_run_id = p.id) AS evals,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                 'id', f.id, 'user_id', f.user_id, 'rating', f.rating, 'comment', f.comment,
                 'created_at', f.created_at) ORDER BY f.created_at, f.id), '[]'::jsonb)
          FROM ai_feedback f
         WHERE f.farm_id = $1 AND f.ai_run_id = p.id) AS feedback
  FROM page p
 ORDER BY p.created_at DESC, p.id DESC
