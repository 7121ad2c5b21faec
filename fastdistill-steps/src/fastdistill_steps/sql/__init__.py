"""Text-to-SQL steps: SQL extraction, rule checks, schemas and SQLite execution."""
