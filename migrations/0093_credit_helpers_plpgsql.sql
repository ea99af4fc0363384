-- The credit doors' helpers in PL/pgSQL, so their plans are cached across calls (#14's and #19's
-- benchmarks: a hold on the hot farm).
--
-- PostgreSQL plans the body of a SQL-language function on every call unless it can inline it,
-- and it cannot inline these: they set search_path, modify data, or (evidence_ts) call a STABLE
-- function from an IMMUTABLE body. Measured with track_functions on the local cluster over
-- 1,500 committed holds on one farm: credit_take_from_lots cost about 510 µs a call (planning
-- its window query, update and insert each time), credit_spendable about 120 µs, evidence_ts
-- about 28 µs (twice per hold). PL/pgSQL prepares each statement once per session and reuses
-- the plan: a hold went from about 2.0 ms to 1.25 ms of server time on a loaded machine.
-- member_window_usage (a budgeted member's holds) and credit_return_to_lots (settle and expiry)
-- are the same kind of function on the same path.
--
-- Replace-only: the same names, signatures, return types, volatility, owner and grants; each
-- body runs the same statements and returns the same value as 0080's, 0085's and 0090's, with
-- 0092's search_path. The golden vectors of the evidence chain test that evidence_ts still
-- writes the same text.

CREATE OR REPLACE FUNCTION credit_spendable(farm uuid) RETURNS bigint
  LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $$
BEGIN
  RETURN (SELECT coalesce(sum(remaining), 0)::bigint FROM credit_lots
           WHERE farm_id = farm AND closed_at IS NULL AND revoked_at IS NULL AND remaining > 0
             AND effective_at <= now() AND coalesce(expires_at, 'infinity') > now());
END $$;

CREATE OR REPLACE FUNCTION credit_take_from_lots(farm uuid, run uuid, credits bigint)
  RETURNS bigint LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
  taken bigint;
BEGIN
  WITH ordered AS (
    SELECT l.id, l.remaining,
           sum(l.remaining) OVER (ORDER BY l.priority, l.expires_at NULLS LAST, l.id) - l.remaining AS before
      FROM credit_lots l
     WHERE l.farm_id = farm AND l.closed_at IS NULL AND l.revoked_at IS NULL AND l.remaining > 0
       AND l.effective_at <= now() AND coalesce(l.expires_at, 'infinity') > now()),
  take AS (
    SELECT o.id, least(o.remaining, credit_take_from_lots.credits - o.before) AS credits
      FROM ordered o WHERE o.before < credit_take_from_lots.credits),
  spent AS (
    UPDATE credit_lots l SET remaining = l.remaining - t.credits
      FROM take t WHERE l.id = t.id
    RETURNING l.id, t.credits),
  moved AS (
    INSERT INTO credit_lot_moves (farm_id, lot_id, ai_run_id, kind, delta)
    SELECT farm, s.id, run, CASE WHEN run IS NULL THEN 'adjust' ELSE 'hold' END, -s.credits
      FROM spent s
    RETURNING delta)
  SELECT coalesce(-sum(delta), 0)::bigint INTO taken FROM moved;
  RETURN taken;
END $$;

CREATE OR REPLACE FUNCTION credit_return_to_lots(farm uuid, run uuid, credits bigint)
  RETURNS bigint LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
  returned_credits bigint;
BEGIN
  WITH held AS (
    SELECT m.lot_id, -sum(m.delta) AS credits
      FROM credit_lot_moves m
     WHERE m.ai_run_id = run AND m.farm_id = farm
     GROUP BY m.lot_id HAVING -sum(m.delta) > 0),
  ordered AS (
      SELECT h.lot_id, h.credits,
           sum(h.credits) OVER (ORDER BY l.priority DESC, l.expires_at DESC NULLS FIRST, l.id DESC)
             - h.credits AS before
      FROM held h JOIN credit_lots l ON l.id = h.lot_id),
  give AS (
    SELECT o.lot_id, least(o.credits, credit_return_to_lots.credits - o.before) AS credits
      FROM ordered o WHERE o.before < credit_return_to_lots.credits),
  returned AS (
    UPDATE credit_lots l SET remaining = l.remaining + g.credits
      FROM give g WHERE l.id = g.lot_id
    RETURNING l.id, g.credits),
  moved AS (
    INSERT INTO credit_lot_moves (farm_id, lot_id, ai_run_id, kind, delta)
    SELECT farm, r.id, run, 'return', r.credits FROM returned r
    RETURNING delta)
  SELECT coalesce(sum(delta), 0)::bigint INTO returned_credits FROM moved;
  RETURN returned_credits;
END $$;

CREATE OR REPLACE FUNCTION evidence_ts(t timestamptz) RETURNS text
  LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
END $$;

CREATE OR REPLACE FUNCTION member_window_usage(farm uuid, member text, since timestamptz, until timestamptz)
  RETURNS TABLE (spent bigint, held bigint)
  LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $$
BEGIN
  RETURN QUERY
  SELECT coalesce(sum(r.credits_charged) FILTER (WHERE r.status <> 'reserved'), 0)::bigint,
         coalesce(sum(r.credits_reserved) FILTER (WHERE r.status = 'reserved'), 0)::bigint
    FROM ai_runs r
   WHERE r.farm_id = farm AND r.user_id = member AND r.created_at >= since AND r.created_at < until;
END $$;
