-- Memory distillation (distill-memories job): what a memory is about, and the cross-farm list
-- of conversations waiting to be distilled.
--
-- Expand-only: a nullable column and a new function; code that does not know them still works.

-- The normalised subject of a distilled fact ("vaccination day", "pond 3"). Two current facts
-- about the same subject contradict each other: the newer supersedes the older (kept, marked).
ALTER TABLE memories ADD COLUMN subject text CHECK (length(subject) BETWEEN 1 AND 200);
CREATE INDEX memories_current_subject ON memories (farm_id, subject) WHERE superseded_by IS NULL;

-- Conversations idle since before `idle_before` with messages past their watermark, oldest
-- first, at most `max_rows`. Ids only (no content crosses tenants); the job then works on each
-- inside that farm's tenant transaction, where row-level security applies.
CREATE FUNCTION conversations_to_distill(idle_before timestamptz, max_rows integer)
  RETURNS TABLE (farm_id uuid, conversation_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT c.farm_id, c.id
    FROM conversations c
   WHERE c.last_message_at < idle_before
     AND EXISTS (SELECT 1 FROM messages m
                  WHERE m.farm_id = c.farm_id AND m.conversation_id = c.id
                    AND m.id > c.distilled_through)
   ORDER BY c.last_message_at, c.id
   LIMIT greatest(max_rows, 0)
$$;
REVOKE ALL ON FUNCTION conversations_to_distill(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION conversations_to_distill(timestamptz, integer) TO farmops_app;
