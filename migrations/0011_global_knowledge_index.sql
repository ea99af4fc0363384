-- Retrieval searches the farm's own rows and the global base separately and merges the two
-- top-k lists (farmops::rag). The global base gets its own HNSW index so its search is an
-- unfiltered approximate search over exactly its rows (no other farm's rows in the graph to
-- filter away), whatever the size of the table.
CREATE INDEX embeddings_global_hnsw ON embeddings USING hnsw (embedding vector_cosine_ops)
  WITH (m = 16, ef_construction = 64)
  WHERE farm_id = '00000000-0000-0000-0000-000000000000';
