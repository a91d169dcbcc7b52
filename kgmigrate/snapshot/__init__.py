"""Snapshots: take one with pg_dump, restore one atomically, their manifests, the check of plain
dumps, and the facts read from the database first."""
