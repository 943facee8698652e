"""The HTTP client: the transport core below (``transport``), the session API above."""
