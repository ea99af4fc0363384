-- The farm's ledger rows after its latest checkpoint (migration 0051) summed by leg type,
-- with the balance, the last balance_after and what open reservations hold. The checkpoint's
-- through_id comes in as a parameter (read by the statement before) so the planner sees how
-- few rows follow it and walks credit_ledger_farm_last, never the whole history.
-- $1 farm, $2 through_id of the latest checkpoint (0 when there is none)
WITH tail AS (
       SELECT count(*) AS entries,
              coalesce(sum(l.delta), 0) AS sum_delta,
              coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'grant'), 0) AS granted,
              coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'adjust'), 0) AS adjusted,
              coalesce(-sum(l.delta) FILTER (WHERE l.entry_type = 'reserve'), 0) AS reserved,
              coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'settle'), 0) AS refunded,
              coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'expire'), 0) AS expired,
              count(*) FILTER (WHERE l.balance_after < 0) AS negative_balances
         FROM credit_ledger l
        WHERE l.farm_id = $1 AND l.id > $2)
SELECT f.credit_balance,
       coalesce((SELECT balance_after FROM credit_ledger
                  WHERE farm_id = $1 ORDER BY id DESC LIMIT 1), 0),
       t.sum_delta::bigint, t.entries::bigint, t.negative_balances::bigint,
       t.granted::bigint, t.adjusted::bigint, t.reserved::bigint, t.refunded::bigint,
       t.expired::bigint,
       (SELECT coalesce(sum(credits_reserved), 0) FROM ai_runs
         WHERE farm_id = $1 AND status = 'reserved')::bigint
  FROM farms f CROSS JOIN tail t
 WHERE f.id = $1
