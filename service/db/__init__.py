"""The operational database: users, tokens, sessions, the audit log and the review workflow.

One declarative :class:`~service.db.base.Base` holds every table; Alembic migrations in
``service/migrations`` create them (``service.db.migrate.upgrade``).
"""
