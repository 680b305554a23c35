"""The desk HTTP API: each unit's desk reads its own queue and cases and posts actions as events.

`uvicorn services.desk_api.main:app`. One deployment serves the five desks; a bearer token's scope is
exactly one unit, and anything outside that scope answers 404 so that existence is not revealed.
"""
