-- Two corrections to issue 18 as first built (0085, 0086), to what the issue says.
--
-- 1. Re-arming. The issue: "a threshold re-arms when the balance goes back to or above it".
--    0086 re-armed only on credits coming in (a `grant` or a positive `adjust` leg). Now ANY
--    new ledger leg whose balance_after is at or above a disarmed threshold re-arms it:
--    a settle's refund of held credits, an expired run's refund, a lot return, a payment's
--    grant, an operator adjustment. The firing rule is unchanged: a debit leg taking the
--    balance from >= threshold to < threshold fires each ARMED threshold it crosses (one
--    outbox row, UNIQUE (ledger_id, threshold)) and disarms it.
--
--    Why this stays exactly once per crossing, race-free: every writer of a leg (the hold
--    doors, settle, expire, credit_adjust, credit_add_lot, credit_claw_back_lot,
--    credit_close_lots, the payment doors through them) updates `farms.credit_balance` of
--    the leg's farm before inserting the leg, in the same transaction, so it holds that row
--    lock until it commits; and every door inserts one leg per statement, so the AFTER ROW
--    trigger runs once per leg in the leg's order. The legs of a farm, and so this trigger's
--    reads and writes of the farm's thresholds, are serialized by the farm row lock, and
--    (READ COMMITTED, a new snapshot per statement) each run sees the committed state its
--    predecessor left. Invariant after every leg: a threshold is armed exactly when the
--    balance is at or above it (set_credit_alerts arms a new threshold the same way).
--
--    The consequence, by design of the issue: a balance hovering at a threshold (a turn's
--    hold takes it below, the settle's refund brings it back to or above) alerts on each
--    fall below it, once per fall. Consumers that want fewer notices debounce on
--    (farm_id, threshold).
--
--    Backfill: thresholds 0086 left disarmed while the balance is back at or above them
--    (after a refund) are re-armed here. This migration first locks `farms` (ACCESS
--    EXCLUSIVE, which the ALTER below takes anyway; taken first so it is never an upgrade
--    that could deadlock with a door waiting on a farm row): every transaction that wrote a
--    leg has updated its farm's row, so it has committed before the lock is granted (its
--    state is what the backfill reads), and any later leg waits for this commit and runs
--    the new trigger.
--
-- 2. The farm's time zone defaults to Africa/Lagos (UTC+1, no daylight saving), as the issue
--    says; 0070 defaulted to UTC. Only the column default changes: farms created from now on
--    without a time zone get Africa/Lagos. Existing farms KEEP their time zone (UTC for those
--    created before this): changing a farm's day boundary under running budgets would move
--    its current day and month windows by an hour, so runs already counted in one window
--    would count in another (a member's spent day could be split or merged). An operator who
--    wants Lagos for an existing farm sets it explicitly, best right after its midnight:
--      UPDATE farms SET time_zone = 'Africa/Lagos' WHERE id = '<farm>';
--    `budget_window` is unchanged: a zone PostgreSQL does not know still counts as UTC.
--
-- Expand-only: a trigger function replaced with the same signature (previous code writes
-- legs the same way and does not read `armed` semantics), a new column default (previous
-- code inserts farms without naming the column either way), and a backfill that only arms.

LOCK TABLE farms IN ACCESS EXCLUSIVE MODE;

ALTER TABLE farms ALTER COLUMN time_zone SET DEFAULT 'Africa/Lagos';

CREATE OR REPLACE FUNCTION credit_alert_on_leg() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  prior bigint := NEW.balance_after - NEW.delta;
BEGIN
  IF NEW.delta < 0 THEN
    WITH crossed AS (
      UPDATE credit_alert_thresholds t SET armed = false
       WHERE t.farm_id = NEW.farm_id AND t.armed
         AND prior >= t.threshold AND NEW.balance_after < t.threshold
      RETURNING t.threshold)
    INSERT INTO credit_alert_outbox (farm_id, threshold, balance, ledger_id)
    SELECT NEW.farm_id, c.threshold, NEW.balance_after, NEW.id FROM crossed c;
  END IF;
  -- any leg: the balance at or above a disarmed threshold re-arms it (a debit never
  -- matches a threshold it has just fired: its balance_after is below it)
  UPDATE credit_alert_thresholds t SET armed = true
   WHERE t.farm_id = NEW.farm_id AND NOT t.armed AND t.threshold <= NEW.balance_after;
  RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION credit_alert_on_leg() FROM PUBLIC;

UPDATE credit_alert_thresholds t SET armed = true
  FROM farms f
 WHERE f.id = t.farm_id AND NOT t.armed AND t.threshold <= f.credit_balance;
