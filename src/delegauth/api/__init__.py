"""The HTTP edge: Falcon resources over the domain services."""
