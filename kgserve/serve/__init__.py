"""Serving the active provider: the served provider (the one check per request, the embedding
cache, the batching queue and its policy, deadlines) and the manager that swaps providers.
Nothing here answers HTTP or reads the database."""
