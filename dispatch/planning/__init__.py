"""
Planning a day of booked-ahead trips into drivers' runs.

The pure part (no database): `rules` (windows, service and ride times),
`travel` (how long a leg takes), `problem` (the trips and vehicles of one
day, and a plan of them), `timetable` (the times of a route in a given
order), `verify` (every constraint, checked on every plan), `solver` (VROOM)
and `insertion` (cheapest insertion: the benchmark's baseline, and a
will-call return joining a run that passes). The services that read and
write runs live in `dispatch.planning.services`, `dispatch.planning.day`
and `dispatch.planning.shifts`.
"""
