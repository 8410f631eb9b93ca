"""fastapi-fleet-app: the items service deployed by fastapi-fleet."""
