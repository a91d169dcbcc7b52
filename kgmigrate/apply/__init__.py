"""Planning and running migrations against a database: plan (read-only), up, down, one file in its
transaction, the tracking table, the session, server errors, and the locks."""
