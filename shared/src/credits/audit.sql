WITH cp AS (
  SELECT through_id, created_at, entries, sum_delta, balance_after
    FROM credit_ledger_checkpoints WHERE farm_id = $1
   ORDER BY through_id DESC LIMIT 1)
SELECT f.credit_balance,
       coalesce((SELECT balance_after FROM credit_ledger WHERE farm_id = f.id ORDER BY id DESC LIMIT 1), 0),
       coalesce(sum(l.delta), 0)::bigint,
       count(l.id),
       count(l.id) FILTER (WHERE l.balance_after < 0),
       cp.through_id, cp.created_at,
       count(l.id) FILTER (WHERE l.id > cp.through_id),
       (count(l.id) FILTER (WHERE l.id <= cp.through_id) = cp.entries
        AND coalesce(sum(l.delta) FILTER (WHERE l.id <= cp.through_id), 0) = cp.sum_delta
        AND (SELECT balance_after FROM credit_ledger
              WHERE farm_id = f.id AND id = cp.through_id) = cp.balance_after)
  FROM farms f
  LEFT JOIN credit_ledger l ON l.farm_id = f.id
  LEFT JOIN cp ON true
 WHERE f.id = $1
 GROUP BY f.id, f.credit_balance, cp.through_id, cp.created_at, cp.entries,
          cp.sum_delta, cp.balance_after
