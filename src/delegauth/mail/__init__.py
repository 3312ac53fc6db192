"""Outgoing mail: composed into the outbox in the caller's transaction, delivered later."""
