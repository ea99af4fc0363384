WITH w AS (
  SELECT u.unit, bw.starts_at, bw.resets_at
    FROM farms f
   CROSS JOIN unnest(ARRAY['daily', 'monthly']) AS u (unit)
   CROSS JOIN LATERAL budget_window(f.time_zone, u.unit, now()) bw
   WHERE f.id = $1)
SELECT w.unit, w.starts_at, w.resets_at, r.feature,
       coalesce(sum(r.credits_charged) FILTER (WHERE r.status <> 'reserved'), 0)::bigint,
       coalesce(sum(r.credits_reserved) FILTER (WHERE r.status = 'reserved'), 0)::bigint,
       count(r.id)
  FROM w LEFT JOIN ai_runs r
    ON r.farm_id = $1 AND r.user_id = $2 AND r.created_at >= w.starts_at AND r.created_at < w.resets_at
 GROUP BY w.unit, w.starts_at, w.resets_at, r.feature
 ORDER BY w.unit, r.feature
