"""Web plumbing used only by the services: app factory, middleware, readiness, reload,
admin routes, settings, process tuning and the typed HTTP clients of internal calls."""
