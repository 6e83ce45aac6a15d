"""Alembic migrations of the operational database (run by ``service.db.migrate.upgrade``).

Revisions: ``0001_identity_audit`` (users, api_tokens, web_sessions, audit_log), then
``0002_workflow`` (tasks, reviews, overrides, alerts), each ``down_revision`` the one before.
"""
