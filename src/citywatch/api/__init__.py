"""The FastAPI application: thin REST routes under /api/v1 and the WebSocket event stream."""
