"""PostgreSQL's own programs: finding them, pointing client programs at a database, and the
project-local cluster."""
