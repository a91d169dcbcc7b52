"""Serving the active provider: the served provider (cache, batching queue, deadlines) and the
manager that swaps it. Nothing here knows HTTP or the database."""
