-- Knowledge: the reembed sweep's cross-farm look-up. The sweep runs outside any tenant; this
-- helper tells it which farms (the global farm included) hold embeddings made by another model
-- or whose content no longer matches its hash. It returns farm ids only, never content.
CREATE FUNCTION farms_with_stale_embeddings(current_model text) RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT DISTINCT farm_id FROM embeddings
   WHERE embedding_model <> current_model
      OR content_hash <> encode(sha256(convert_to(content, 'UTF8')), 'hex')
$$;
REVOKE ALL ON FUNCTION farms_with_stale_embeddings(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION farms_with_stale_embeddings(text) TO farmops_app;
