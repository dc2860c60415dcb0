"""HTTP and websocket routes of the dashboard."""
