"""PostgreSQL fixture: placeholder until the store issue's real PostgreSQL fixture lands."""
