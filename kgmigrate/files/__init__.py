"""Migration files on disk: finding, reading, checksumming and parsing them, writing new ones,
and linting them with squawk. Nothing here connects to a database."""
