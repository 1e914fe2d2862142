"""The web edge: the REST API (app.py, api.py, sources.py), its one error mapping (errors.py),
metrics, and the server entry points (server.py)."""
