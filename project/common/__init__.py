"""
Runtime the apps share: errors, what input may hold, database threads, the
socket base class, admin mixins, and the adapters over library internals.
Nothing here imports an app (people, dispatch, console) or project's wiring
(settings, urls, routing, asgi); the apps import it.
"""
