"""Storage on peewee: SQLite (embedded default) and PostgreSQL."""
