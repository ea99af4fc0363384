-- A chat turn's save re-checks the caller's membership under a lock (issue 21: a member
-- removed or demoted during a turn keeps nothing they did not already have).
--
-- The turn reads the caller's role at its start, then calls the model for seconds with no
-- lock held. Its final transaction (the one that writes its drafts, records and messages)
-- calls `lock_member_for_turn` first: it takes a FOR SHARE lock on the caller's membership
-- row and returns their role, or NULL when they are no longer a member. The lock conflicts
-- with `remove_member`'s DELETE and `set_member_role`'s UPDATE, so a removal or demotion
-- either committed before (the turn sees it and writes nothing) or waits until the turn has
-- committed (the member had the right when the turn's writes were made). The policy (who may
-- chat) stays in Rust (`Role::may_chat`).
--
-- SECURITY DEFINER because FOR SHARE needs a write privilege the application role does not
-- have on `farm_members` (and must not get). Expand-only: a new function.

CREATE FUNCTION lock_member_for_turn(who text) RETURNS text
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public AS $$
DECLARE
  r text;
BEGIN
  SELECT role INTO r FROM farm_members
   WHERE farm_id = current_farm_id() AND user_id = who
     FOR SHARE;
  RETURN r;
END $$;
REVOKE ALL ON FUNCTION lock_member_for_turn(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lock_member_for_turn(text) TO farmops_app;
