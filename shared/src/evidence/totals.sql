-- The farm's ledger summed by leg type, and what open reservations still hold.
SELECT coalesce(sum(delta) FILTER (WHERE entry_type = 'grant'), 0)::bigint,
       coalesce(sum(delta) FILTER (WHERE entry_type = 'adjust'), 0)::bigint,
       coalesce(-sum(delta) FILTER (WHERE entry_type = 'reserve'), 0)::bigint,
       coalesce(sum(delta) FILTER (WHERE entry_type = 'settle'), 0)::bigint,
       coalesce(sum(delta) FILTER (WHERE entry_type = 'expire'), 0)::bigint,
       count(*)::bigint,
       (SELECT coalesce(sum(credits_reserved), 0)::bigint FROM ai_runs
         WHERE farm_id = $1 AND status = 'reserved')
  FROM credit_ledger WHERE farm_id = $1
