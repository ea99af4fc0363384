-- A superseded memory is never retrieved again: retrieval (rag::PgRetriever) searches every
-- row of `embeddings`, so the memory's embeddings go in the same transaction that supersedes
-- it, whoever supersedes it, and no embedding may be added for a superseded memory. The row
-- of the memory itself stays (superseded_by / superseded_at: the history). Embeddings left
-- behind by supersedes before this migration are removed here.

CREATE FUNCTION memory_superseded_drop_embeddings() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  DELETE FROM embeddings WHERE farm_id = NEW.farm_id AND memory_id = NEW.id;
  RETURN NULL;
END $$;
CREATE TRIGGER memories_superseded_unsearchable AFTER UPDATE OF superseded_by ON memories
  FOR EACH ROW WHEN (NEW.superseded_by IS NOT NULL)
  EXECUTE FUNCTION memory_superseded_drop_embeddings();

CREATE FUNCTION embedding_of_current_memory() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM memories
              WHERE farm_id = NEW.farm_id AND id = NEW.memory_id AND superseded_by IS NOT NULL) THEN
    RAISE EXCEPTION 'memory % is superseded: it is not embedded again', NEW.memory_id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER embeddings_of_current_memories BEFORE INSERT OR UPDATE OF memory_id ON embeddings
  FOR EACH ROW WHEN (NEW.memory_id IS NOT NULL)
  EXECUTE FUNCTION embedding_of_current_memory();

DELETE FROM embeddings e
 USING memories m
 WHERE e.farm_id = m.farm_id AND e.memory_id = m.id AND m.superseded_by IS NOT NULL;
