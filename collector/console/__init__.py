"""The web console: server-rendered pages over the same read services and role checks as the API.

Kept import-light on purpose: ``collector.policy`` imports ``console.sessions`` to resolve a
session cookie, so this package must not import the routes (which import ``policy``) on its own;
``collector.main`` imports ``console.routes``.
"""
