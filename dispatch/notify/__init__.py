"""
Durable notifications of ride events, by SMS, push and in the app.

- `events`: which ride event is which notice (the one table to extend);
- `outbox`: the rows written in the ride change's own transaction;
- `texts`: what the texts say, from the gettext catalogues (en, af, zu);
- `delivery`: the worker that claims, sends, retries and records them;
- `near`: "the driver is about N minutes away", from the live positions.
"""
