"""The embedding configuration as rows of kg_api.embedding_config: the store (SQL), the listener
that follows changes (LISTEN/NOTIFY) and the last known row kept on disk."""
