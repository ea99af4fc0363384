-- Conversations, evaluations and feedback of runs, and the knowledge the model may read:
-- memories, documents and their embeddings (pgvector, 1024 dimensions).

CREATE TABLE conversations (
  farm_id              uuid NOT NULL REFERENCES farms (id),
  id                   uuid NOT NULL DEFAULT gen_random_uuid(),
  user_id              text NOT NULL,
  created_at           timestamptz NOT NULL DEFAULT now(),
  last_message_at      timestamptz NOT NULL DEFAULT now(),
  distilled_through    bigint NOT NULL DEFAULT 0,   -- watermark: messages.id already distilled
  summary              text,
  PRIMARY KEY (id),
  UNIQUE (farm_id, id)
);
CREATE INDEX conversations_idle ON conversations (last_message_at);

CREATE TABLE messages (
  farm_id          uuid NOT NULL,
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  conversation_id  uuid NOT NULL,
  role             text NOT NULL CHECK (role IN ('user', 'assistant')),
  content          text NOT NULL CHECK (length(content) <= 32000),
  ai_run_id        uuid,
  created_at       timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (farm_id, conversation_id) REFERENCES conversations (farm_id, id) ON DELETE CASCADE,
  FOREIGN KEY (farm_id, ai_run_id) REFERENCES ai_runs (farm_id, id)
);
CREATE INDEX messages_conversation ON messages (farm_id, conversation_id, id DESC);

CREATE TABLE ai_evals (
  farm_id     uuid NOT NULL,
  id          uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
  ai_run_id   uuid NOT NULL,
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  passed      boolean NOT NULL,
  details     jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at  timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (farm_id, ai_run_id) REFERENCES ai_runs (farm_id, id)
);
CREATE INDEX ai_evals_run ON ai_evals (farm_id, ai_run_id);

CREATE TABLE ai_feedback (
  farm_id     uuid NOT NULL,
  id          uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
  ai_run_id   uuid NOT NULL,
  user_id     text NOT NULL,
  rating      text NOT NULL CHECK (rating IN ('up', 'down')),
  comment     text CHECK (length(comment) <= 2000),
  created_at  timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (farm_id, ai_run_id) REFERENCES ai_runs (farm_id, id),
  UNIQUE (ai_run_id, user_id)
);

CREATE TABLE memories (
  farm_id          uuid NOT NULL REFERENCES farms (id),
  id               uuid NOT NULL DEFAULT gen_random_uuid(),
  content          text NOT NULL CHECK (length(content) BETWEEN 1 AND 2000),
  conversation_id  uuid,
  superseded_by    uuid,
  superseded_at    timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (id),
  UNIQUE (farm_id, id),
  FOREIGN KEY (farm_id, conversation_id) REFERENCES conversations (farm_id, id) ON DELETE SET NULL (conversation_id),
  FOREIGN KEY (farm_id, superseded_by) REFERENCES memories (farm_id, id),
  CHECK ((superseded_by IS NULL) = (superseded_at IS NULL))
);

CREATE TABLE documents (
  farm_id       uuid NOT NULL REFERENCES farms (id),
  id            uuid NOT NULL DEFAULT gen_random_uuid(),
  title         text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
  body          text NOT NULL CHECK (length(body) BETWEEN 1 AND 200000),
  created_by    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (id),
  UNIQUE (farm_id, id)
);

-- One row per embedded passage. Its source is exactly one of: a document chunk, a memory, a
-- conversation summary; deleting the source deletes its embeddings in the same transaction.
CREATE TABLE embeddings (
  farm_id          uuid NOT NULL REFERENCES farms (id),
  id               uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
  document_id      uuid,
  chunk_index      integer CHECK (chunk_index >= 0),
  memory_id        uuid,
  conversation_id  uuid,
  content          text NOT NULL,
  content_hash     text NOT NULL,
  embedding_model  text NOT NULL,
  embedding        vector(1024) NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (farm_id, document_id) REFERENCES documents (farm_id, id) ON DELETE CASCADE,
  FOREIGN KEY (farm_id, memory_id) REFERENCES memories (farm_id, id) ON DELETE CASCADE,
  FOREIGN KEY (farm_id, conversation_id) REFERENCES conversations (farm_id, id) ON DELETE CASCADE,
  CHECK (num_nonnulls(document_id, memory_id, conversation_id) = 1),
  CHECK ((document_id IS NULL) = (chunk_index IS NULL)),
  UNIQUE (document_id, chunk_index)
);
CREATE INDEX embeddings_farm ON embeddings (farm_id);
CREATE INDEX embeddings_hnsw ON embeddings USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);

SELECT enable_tenant_rls('conversations', 'SELECT, INSERT, UPDATE');
SELECT enable_tenant_rls('messages', 'SELECT, INSERT');
SELECT enable_tenant_rls('ai_evals', 'SELECT, INSERT');
SELECT enable_tenant_rls('ai_feedback', 'SELECT, INSERT, UPDATE');
SELECT enable_tenant_rls('memories', 'SELECT, INSERT, UPDATE');
SELECT enable_tenant_rls('documents', 'SELECT, INSERT, DELETE', global_read => true);
SELECT enable_tenant_rls('embeddings', 'SELECT, INSERT, UPDATE, DELETE', global_read => true);
