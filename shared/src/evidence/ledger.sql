-- The farm's ledger rows after its latest checkpoint (migration 0051) summed by leg type
-- (credit_ledger_sums, inlined by the planner), with the balance, the last balance_after and
-- what open reservations hold. The checkpoint's through_id comes in as a parameter (read by
-- the statement before) so the planner sees how few rows follow it and walks
-- credit_ledger_farm_last, never the whole history.
-- $1 farm, $2 through_id of the latest checkpoint (0 when there is none), $3 its balance_after
SELECT f.credit_balance,
       -- the last balance_after: the tail's last row (by primary key) or the checkpoint's
       coalesce((SELECT balance_after FROM credit_ledger WHERE id = t.through_id), $3, 0)
         AS last_balance_after,
       t.sum_delta, t.entries, t.negative_balances,
       t.granted, t.adjusted, t.reserved, t.refunded, t.expired, t.grants_expired,
       (SELECT coalesce(sum(credits_reserved), 0) FROM ai_runs
         WHERE farm_id = $1 AND status = 'reserved')::bigint AS open
  FROM farms f CROSS JOIN credit_ledger_sums($1, $2) t
 WHERE f.id = $1
