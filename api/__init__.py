"""The care coordinators' API (FastAPI): arrives with its own issue."""
